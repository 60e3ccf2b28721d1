//! The inner product of two f32 vectors, with AVX2 and FMA when the CPU has
//! them (checked at run time: release builds target baseline x86-64, whose
//! SSE2 is about a third as fast here), else a portable loop.

/// `sum_i a[i] * b[i]` over the shorter of the two slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

/// The inner products of `q` with four rows at once (each over the shorter
/// of `q` and the row). Graph walks score a node's unvisited neighbours
/// together: `q` is loaded once for four rows, which is what limits a lone
/// [`dot`] (two loads per multiply-add); faiss's HNSW does the same
/// (`fvec_inner_product_batch_4`).
pub fn dot4(q: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        let n = rows.iter().map(|r| r.len()).min().unwrap_or(0).min(q.len());
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot4_avx2(&q[..n], rows.map(|r| &r[..n])) };
        }
    }
    rows.map(|r| dot_portable(q, r))
}

/// Two 8-lane accumulators per row (eight in all, so the multiply-adds of
/// one row do not wait on each other), then the tail. All slices have
/// `q.len()` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot4_avx2(q: &[f32], rows: [&[f32]; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let n = q.len();
    let whole = n - n % 16;
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    let mut i = 0;
    while i < whole {
        // SAFETY: i + 16 <= whole <= n, the length of `q` and of every row.
        unsafe {
            let (q0, q1) = (_mm256_loadu_ps(q.as_ptr().add(i)), _mm256_loadu_ps(q.as_ptr().add(i + 8)));
            for (acc, row) in acc.iter_mut().zip(&rows) {
                acc[0] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(row.as_ptr().add(i)), acc[0]);
                acc[1] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(row.as_ptr().add(i + 8)), acc[1]);
            }
        }
        i += 16;
    }
    let mut out = [0f32; 4];
    for ((out, acc), row) in out.iter_mut().zip(&acc).zip(&rows) {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc[0], acc[1])) };
        *out = lanes.iter().sum::<f32>() + dot_portable(&q[whole..], &row[whole..]);
    }
    out
}

/// Eight independent sums, which the compiler vectorises for any target.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for ((s, x), y) in sums.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Four 8-lane fused multiply-add accumulators, then the tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [_mm256_setzero_ps(); 4];
    let (a32, b32) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (a32.remainder(), b32.remainder());
    for (x, y) in a32.zip(b32) {
        for (lane, acc) in acc.iter_mut().enumerate() {
            // SAFETY: each chunk holds 32 floats, so lanes 8 * lane .. 8 * lane + 8 are in bounds.
            let (x, y) = unsafe { (_mm256_loadu_ps(x.as_ptr().add(8 * lane)), _mm256_loadu_ps(y.as_ptr().add(8 * lane))) };
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum::<f32>() + dot_portable(ra, rb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_sum_at_every_length() {
        for n in [0, 1, 7, 8, 31, 32, 33, 100, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4, "n = {n}");
            assert!((dot_portable(&a, &b) as f64 - want).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    fn four_at_once_match_one_at_a_time() {
        for n in [0, 1, 15, 16, 17, 100, 384] {
            let q: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let rows: Vec<Vec<f32>> = (0..4).map(|r| (0..n + r).map(|i| (i as f32 * 0.11 + r as f32).cos()).collect()).collect();
            let got = dot4(&q, [&rows[0], &rows[1], &rows[2], &rows[3]]);
            for (got, row) in got.iter().zip(&rows) {
                assert!((got - dot(&q, row)).abs() < 1e-4, "n = {n}");
            }
        }
    }
}
