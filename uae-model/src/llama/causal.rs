//! Causal self-attention of a prompt pass (optionally padded), with a
//! fast path for Burn's flex CPU backend.
//!
//! flex 0.22.1's attention (its naive kernel: the teacher's passes stay
//! under its 256K-score budget) scores every query against every key, then
//! masks the upper half in a scalar loop with a libm `expf` per score: with
//! the softmax's `expf`, 9% of a SmolLM2 scoring profile. The fast path
//! takes the queries in tiles of [`TILE`], scores each tile only against
//! the keys its last query may see (gemm), takes the softmax of each row's
//! visible prefix with a vectorised exp, and multiplies by the values
//! (gemm): about half the arithmetic. Query heads share their key/value
//! head (grouped-query attention) without copies, and a padded row's real
//! queries skip its padding keys; a decode step (one query) reads the
//! cached keys and values where they lie. Every other case (GPU, autodiff)
//! takes Burn's `attention` with the padding's mask.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::PaddingMask;

/// `softmax(q kᵀ / sqrt(d) + causal mask) v` for `q` `[batch, heads, seq_q,
/// d]` and `k`, `v` `[batch, kv_heads, seq_kv, d]` (`heads` a multiple of
/// `kv_heads`; the queries are the last `seq_q` positions of the keys),
/// with `padding` hidden from the real queries. On flex, `k` and `v` may be
/// the filled rows of a key/value cache (read in place); other backends get
/// them with `heads` heads already.
pub(super) fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, padding: Option<&PaddingMask>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(out) = fast::causal_attention(&q, &k, &v, padding.map(|p| p.padding)) {
        return out;
    }
    // Causal masking is bottom-right aligned, so it also holds with a cache.
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: true };
    attention(q, k, v, padding.map(|p| p.mask.clone()), None, options)
}

#[cfg(feature = "flex")]
pub(super) use fast::packed_causal_attention;

/// Queries per tile: the tile's scores are `TILE x seq_kv` floats.
#[cfg(feature = "flex")]
const TILE: usize = 64;

#[cfg(feature = "flex")]
mod fast {
    use burn::prelude::*;
    use rayon::prelude::*;

    use super::TILE;
    use crate::llama::Padding;
    use crate::llama::rope::rotate_head;
    use crate::flex::{contiguous_f32, exp_nonpositive, f32_heads};

    /// `padding`: the padding keys of each row (none when `None`).
    pub(super) fn causal_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, padding: Option<&Padding>) -> Option<Tensor<4>> {
        let [batch, heads, seq_q, dim] = q.dims();
        let [kb, kv_heads, seq_kv, kd] = k.dims();
        if kb != batch || kd != dim || v.dims() != k.dims() || kv_heads == 0 || heads % kv_heads != 0 || seq_kv < seq_q {
            return None;
        }
        if padding.is_some_and(|p| p.pads.len() != batch) {
            return None;
        }
        let qt = contiguous_f32(q)?;
        let (kh, vh) = (f32_heads(k)?, f32_heads(v)?);
        let (qs, ks, vs) = (qt.as_slice::<f32>()?, kh.tensor.storage::<f32>(), vh.tensor.storage::<f32>());
        let group = heads / kv_heads;
        let scale = 1.0 / (dim as f32).sqrt();
        let mut out = vec![0.0f32; batch * heads * seq_q * dim];
        if out.is_empty() {
            return Some(Tensor::from_data(TensorData::new(out, [batch, heads, seq_q, dim]), &q.device()));
        }
        out.par_chunks_mut(seq_q * dim).enumerate().for_each_init(
            || vec![0.0f32; TILE * seq_kv],
            |scores, (bh, o)| {
                let (b, h) = (bh / heads, bh % heads);
                let kv = b * kv_heads + h / group;
                let (k, v) = (kh.start + kv * kh.stride, vh.start + kv * vh.stride);
                let head = Head {
                    q: &qs[bh * seq_q * dim..(bh + 1) * seq_q * dim],
                    k: &ks[k..k + seq_kv * dim],
                    v: &vs[v..v + seq_kv * dim],
                    q_stride: dim,
                    kv_stride: dim,
                    seq_q,
                    seq_kv,
                    dim,
                    scale,
                    at: padding.map_or(0, |p| p.at),
                    pad: padding.map_or(0, |p| p.pads[b]),
                };
                // SAFETY: `o` is this head's own `[seq_q, dim]` block.
                unsafe { head.attend(o.as_mut_ptr(), dim, scores) };
            },
        );
        Some(Tensor::from_data(TensorData::new(out, [batch, heads, seq_q, dim]), &q.device()))
    }

    /// The output buffer of [`packed_causal_attention`], which every task
    /// writes its own (sequence, head) block of.
    struct Output(*mut f32);
    // SAFETY: the tasks write disjoint elements (see `packed_causal_attention`).
    unsafe impl Sync for Output {}

    impl Output {
        /// The element `at` (a method, so that closures capture the whole
        /// `Output`, which is `Sync`, rather than its pointer field).
        fn at(&self, at: usize) -> *mut f32 {
            self.0.wrapping_add(at)
        }
    }

    /// Causal self-attention of sequences laid back to back without padding
    /// (`lengths` of them, from position 0, none continuing a cache), with the
    /// rotary embedding applied here: `q` `[1, tokens, heads * dim]`, `k` and
    /// `v` `[1, tokens, kv_heads * dim]` as the projections give them, `cos` and
    /// `sin` `[1, longest, dim]` ([`crate::llama::rope::tables`] of positions from 0).
    /// The output `[1, tokens, heads * dim]` is what the output projection
    /// reads: no padded layout is made, attended or packed again, and no head
    /// is copied out. `None` off flex's inference fast path (the caller lays
    /// the batch out padded instead).
    #[allow(clippy::too_many_arguments)]
    pub(in crate::llama) fn packed_causal_attention(
        q: &Tensor<3>,
        k: &Tensor<3>,
        v: &Tensor<3>,
        cos: &Tensor<3>,
        sin: &Tensor<3>,
        lengths: &[usize],
        heads: usize,
        kv_heads: usize,
    ) -> Option<Tensor<3>> {
        let [one, tokens, width] = q.dims();
        let kv_width = k.dims()[2];
        if one != 1 || heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || width % heads != 0 {
            return None;
        }
        let dim = width / heads;
        let seq = lengths.iter().copied().max().unwrap_or(0);
        if dim % 2 != 0
            || kv_width != kv_heads * dim
            || k.dims() != [1, tokens, kv_width]
            || v.dims() != k.dims()
            || lengths.iter().sum::<usize>() != tokens
            || cos.dims() != [1, seq, dim]
            || sin.dims() != cos.dims()
        {
            return None;
        }
        let (qt, kt, vt) = (contiguous_f32(q)?, contiguous_f32(k)?, contiguous_f32(v)?);
        let (ct, st) = (contiguous_f32(cos)?, contiguous_f32(sin)?);
        let (qs, ks, vs) = (qt.as_slice::<f32>()?, kt.as_slice::<f32>()?, vt.as_slice::<f32>()?);
        let (cs, ss) = (ct.as_slice::<f32>()?, st.as_slice::<f32>()?);
        let mut offsets = Vec::with_capacity(lengths.len());
        let mut positions = Vec::with_capacity(tokens);
        for &len in lengths {
            offsets.push(positions.len());
            positions.extend(0..len);
        }
        // The keys rotated once: each serves `heads / kv_heads` query heads.
        let mut keys = vec![0.0f32; tokens * kv_width];
        keys.par_chunks_mut(kv_width).zip(ks.par_chunks(kv_width)).zip(&positions).for_each(|((out, row), &p)| {
            let (c, s) = (&cs[p * dim..(p + 1) * dim], &ss[p * dim..(p + 1) * dim]);
            for (o, x) in out.chunks_exact_mut(dim).zip(row.chunks_exact(dim)) {
                rotate_head(x, c, s, o);
            }
        });
        let group = heads / kv_heads;
        let scale = 1.0 / (dim as f32).sqrt();
        let mut out = vec![0.0f32; tokens * width];
        let output = Output(out.as_mut_ptr());
        (0..lengths.len() * heads).into_par_iter().for_each_init(
            || (vec![0.0f32; TILE * seq], vec![0.0f32; seq * dim]),
            |(scores, queries), task| {
                let (n, h) = (task / heads, task % heads);
                let (offset, len) = (offsets[n], lengths[n]);
                if len == 0 {
                    return;
                }
                // The head's queries, rotated, as one contiguous block.
                for (p, o) in queries[..len * dim].chunks_exact_mut(dim).enumerate() {
                    let at = (offset + p) * width + h * dim;
                    rotate_head(&qs[at..at + dim], &cs[p * dim..(p + 1) * dim], &ss[p * dim..(p + 1) * dim], o);
                }
                let kv = offset * kv_width + (h / group) * dim;
                let head = Head {
                    q: &queries[..len * dim],
                    k: &keys[kv..],
                    v: &vs[kv..],
                    q_stride: dim,
                    kv_stride: kv_width,
                    seq_q: len,
                    seq_kv: len,
                    dim,
                    scale,
                    at: 0,
                    pad: 0,
                };
                // SAFETY: the block written, rows `offset..offset + len` and
                // columns `h * dim..(h + 1) * dim` of the `[tokens, width]`
                // buffer, is this task's alone: no two tasks share a
                // (sequence, head) pair, and sequences do not overlap.
                unsafe { head.attend(output.at(offset * width + h * dim), width, scores) };
            },
        );
        Some(Tensor::from_data(TensorData::new(out, [1, tokens, width]), &q.device()))
    }

    /// One head's queries `[seq_q, dim]`, keys and values `[seq_kv, dim]`,
    /// their rows `q_stride` and `kv_stride` elements apart.
    struct Head<'a> {
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
        q_stride: usize,
        kv_stride: usize,
        seq_q: usize,
        seq_kv: usize,
        dim: usize,
        scale: f32,
        /// The first padding key.
        at: usize,
        /// Padding keys from `at` on: a query after them skips them; one
        /// before or inside them sees everything before it.
        pad: usize,
    }

    impl Head<'_> {
        /// Writes the head's output `[seq_q, dim]`, rows `out_stride`
        /// elements apart, from `out` on.
        ///
        /// # Safety
        /// `out` must be valid for writing those rows, which nothing else
        /// reads or writes meanwhile; `q`, `k` and `v` must hold their rows.
        unsafe fn attend(&self, out: *mut f32, out_stride: usize, scores: &mut [f32]) {
            let dim = self.dim;
            let (seq_q, seq_kv) = (self.seq_q, self.seq_kv);
            let offset = seq_kv - seq_q;
            for start in (0..seq_q).step_by(TILE) {
                let rows = TILE.min(seq_q - start);
                // Query i sees keys 0..=i + offset; the tile's last sees the most.
                let cols = start + rows + offset;
                let tile = &mut scores[..rows * cols];
                // SAFETY: every pointer and stride describes a slice above
                // with at least the elements gemm reads or writes: `tile`
                // [rows, cols] row-major, the tile's queries [rows, dim]
                // (rows `q_stride` apart), the first `cols` keys [cols, dim]
                // (rows `kv_stride` apart) read as their transpose.
                unsafe {
                    gemm::gemm(
                        rows, cols, dim,
                        tile.as_mut_ptr(), 1, cols as isize, false,
                        self.q[start * self.q_stride..].as_ptr(), 1, self.q_stride as isize,
                        self.k.as_ptr(), self.kv_stride as isize, 1,
                        0.0, self.scale, false, false, false,
                        gemm::Parallelism::None,
                    );
                }
                let (at, end) = (self.at, self.at + self.pad);
                for (i, row) in tile.chunks_exact_mut(cols).enumerate() {
                    let position = start + i + offset;
                    if self.pad == 0 || position < end {
                        softmax_range(row, 0, position + 1);
                    } else if at == 0 {
                        softmax_range(row, end, position + 1);
                    } else {
                        // Padding between a shared prefix and the row's own
                        // keys: scores of -inf weigh e^-87 in the sum (below
                        // its rounding: the largest score weighs 1), then 0.
                        row[at..end].fill(f32::NEG_INFINITY);
                        softmax_range(row, 0, position + 1);
                        row[at..end].fill(0.0);
                    }
                }
                // SAFETY: as above: `tile` [rows, cols], the first `cols`
                // values [cols, dim], the tile's outputs [rows, dim] (rows
                // `out_stride` apart, the caller's promise).
                unsafe {
                    gemm::gemm(
                        rows, dim, cols,
                        out.add(start * out_stride), 1, out_stride as isize, false,
                        tile.as_ptr(), 1, cols as isize,
                        self.v.as_ptr(), 1, self.kv_stride as isize,
                        0.0, 1.0, false, false, false,
                        gemm::Parallelism::None,
                    );
                }
            }
        }
    }

    crate::flex::widest_simd! {
        /// `row[first..end] = softmax(row[first..end])`, zero elsewhere.
        fn softmax_range(row: &mut [f32], first: usize, end: usize) => softmax_range_body
    }

    /// Lanes of the max and sum accumulators (one AVX-512 vector).
    const LANES: usize = 16;

    #[inline(always)]
    fn softmax_range_body(row: &mut [f32], first: usize, end: usize) {
        let (row, hidden) = row.split_at_mut(end);
        hidden.fill(0.0);
        let (before, seen) = row.split_at_mut(first);
        before.fill(0.0);
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let chunks = seen.chunks_exact(LANES);
        for &x in chunks.remainder() {
            lanes[0] = lanes[0].max(x);
        }
        for chunk in chunks {
            for (m, &x) in lanes.iter_mut().zip(chunk) {
                *m = if x > *m { x } else { *m };
            }
        }
        let max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sums = [0.0f32; LANES];
        let mut chunks = seen.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for (s, x) in sums.iter_mut().zip(chunk) {
                *x = exp_nonpositive(*x - max);
                *s += *x;
            }
        }
        // The last partial vector through a full one, so that its exps are
        // vectorised too (a scalar tail was most of this function's time).
        let tail = chunks.into_remainder();
        let mut padded = [0.0f32; LANES];
        padded[..tail.len()].copy_from_slice(tail);
        for x in &mut padded {
            *x = exp_nonpositive(*x - max);
        }
        for ((x, &e), s) in tail.iter_mut().zip(&padded).zip(&mut sums) {
            *x = e;
            *s += e;
        }
        let inverse = 1.0 / sums.iter().sum::<f32>();
        for x in seen.iter_mut() {
            *x *= inverse;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use burn::tensor::module::attention;
        use burn::tensor::ops::AttentionModuleOptions;

        fn tensor(dims: [usize; 4], seed: usize) -> Tensor<4> {
            let n = dims.iter().product::<usize>();
            let values: Vec<f32> = (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 400.0).collect();
            Tensor::from_data(TensorData::new(values, dims), &Device::flex())
        }

        #[test]
        fn matches_burns_causal_attention() {
            // A tile and a ragged one; grouped heads; queries that continue
            // a cache (seq_kv > seq_q); a lone query; left padding, with
            // queries inside it; padding after a shared prefix (`at`), with
            // queries inside it and a lone query after it.
            let cases: &[(usize, usize, usize, usize, usize, Option<(usize, &[usize])>)] = &[
                (2, 4, 2, 70, 70, None),
                (1, 3, 3, 5, 9, None),
                (2, 6, 2, 1, 40, None),
                (1, 2, 1, 130, 130, None),
                (3, 4, 2, 70, 70, Some((0, &[0, 5, 69]))),
                (2, 2, 1, 3, 8, Some((0, &[2, 6]))),
                (3, 4, 2, 20, 90, Some((70, &[0, 3, 19]))),
                (2, 6, 2, 1, 40, Some((17, &[4, 9]))),
            ];
            for &(batch, heads, kv_heads, seq_q, seq_kv, gaps) in cases {
                let padding = gaps.map(|(at, pads)| Padding { at, pads: pads.to_vec() });
                let dim = 16;
                let q = tensor([batch, heads, seq_q, dim], 1);
                let (k, v) = (tensor([batch, kv_heads, seq_kv, dim], 2), tensor([batch, kv_heads, seq_kv, dim], 3));
                let got = causal_attention(&q, &k, &v, padding.as_ref()).expect("contiguous flex tensors take the fast path");
                let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: true };
                let repeat = |t: Tensor<4>| {
                    let times = heads / kv_heads;
                    t.unsqueeze_dim::<5>(2).expand([batch, kv_heads, times, seq_kv, dim]).reshape([batch, heads, seq_kv, dim])
                };
                // The mask `hidden_states_padded` builds.
                let mask = gaps.map(|(at, pads)| {
                    let offset = seq_kv - seq_q;
                    let hidden = move |pad: usize, j: usize, kk: usize| {
                        let gap = at..at + pad;
                        !gap.contains(&j) && gap.contains(&kk)
                    };
                    let values: Vec<bool> = pads
                        .iter()
                        .flat_map(|&pad| (0..seq_q).flat_map(move |i| (0..seq_kv).map(move |kk| hidden(pad, i + offset, kk))))
                        .collect();
                    Tensor::<4, Bool>::from_data(TensorData::new(values, [batch, 1, seq_q, seq_kv]), &Device::flex())
                });
                let want = attention(q, repeat(k), repeat(v), mask, None, options);
                got.into_data().assert_approx_eq::<f32>(&want.into_data(), burn::tensor::Tolerance::absolute(2e-6));
            }
        }

        #[test]
        fn packed_sequences_get_the_padded_batchs_bits() {
            // Sequences of a tile and more, a few tokens, and one token;
            // grouped heads.
            let (heads, kv_heads, dim) = (6, 2, 16);
            let lengths = [70, 5, 1, 33];
            let (tokens, seq) = (lengths.iter().sum::<usize>(), 70);
            let projection = |width: usize, seed: usize| {
                let values: Vec<f32> = (0..tokens * width).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 400.0).collect();
                Tensor::<3>::from_data(TensorData::new(values, [1, tokens, width]), &Device::flex())
            };
            let (q, k, v) = (projection(heads * dim, 1), projection(kv_heads * dim, 2), projection(kv_heads * dim, 3));
            let inv: Vec<f32> = (0..dim / 2).map(|i| 1.0 / 10_000f32.powf(2.0 * i as f32 / dim as f32)).collect();
            let positions: Vec<usize> = (0..seq).collect();
            let (cos, sin) = crate::llama::rope::tables(&inv, &positions, 1, &Device::flex());
            let got = packed_causal_attention(&q, &k, &v, &cos, &sin, &lengths, heads, kv_heads).expect("contiguous flex tensors take the fast path");
            assert_eq!(got.dims(), [1, tokens, heads * dim]);
            let mut offset = 0;
            for len in lengths {
                // The padded path on this sequence alone: heads split and
                // rotated, attention, heads merged.
                let (c, s) = (cos.clone().narrow(1, 0, len), sin.clone().narrow(1, 0, len));
                let split = |x: &Tensor<3>, n: usize, rotate: bool| {
                    crate::llama::rope::split_heads(x.clone().narrow(1, offset, len), n, rotate.then_some((&c, &s)))
                };
                let want = causal_attention(&split(&q, heads, true), &split(&k, kv_heads, true), &split(&v, kv_heads, false), None)
                    .expect("the fast path")
                    .swap_dims(1, 2)
                    .reshape([1, len, heads * dim]);
                assert_eq!(got.clone().narrow(1, offset, len).into_data(), want.into_data(), "length {len}");
                offset += len;
            }
        }

        #[test]
        fn reads_a_cache_with_room_in_place() {
            // Keys and values as a growing cache holds them: the first 9 of
            // 16 rows of each head; a decode step's lone queries.
            let (batch, heads, kv_heads, dim) = (2, 6, 2, 16);
            let q = tensor([batch, heads, 1, dim], 1);
            let filled = |seed| tensor([batch, kv_heads, 16, dim], seed).slice([0..batch, 0..kv_heads, 0..9, 0..dim]);
            let (k, v) = (filled(2), filled(3));
            assert!(crate::flex::f32_heads(&k).is_some(), "a cache's filled rows are read where they lie");
            let copy = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &Device::flex());
            let padding = Padding { at: 0, pads: vec![0, 4] };
            let got = causal_attention(&q, &k, &v, Some(&padding)).expect("the fast path");
            let want = causal_attention(&q, &copy(&k), &copy(&v), Some(&padding)).expect("the fast path");
            assert_eq!(got.into_data(), want.into_data());
            // Heads that are not contiguous blocks are not read as if they were.
            let interleaved = tensor([batch, 9, kv_heads, dim], 2).swap_dims(1, 2);
            assert!(crate::flex::f32_heads(&interleaved).is_none());
        }

        #[test]
        fn every_dispatch_path_gives_the_same_softmax() {
            let row: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0).collect();
            for (first, end) in [(0, 1), (0, 15), (0, 16), (0, 17), (0, 63), (3, 64), (0, 65), (40, 200), (0, 300), (299, 300)] {
                let (mut a, mut b) = (row.clone(), row.clone());
                softmax_range(&mut a, first, end);
                softmax_range_body(&mut b, first, end);
                assert_eq!(a, b);
                let max = row[first..end].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let total: f64 = row[first..end].iter().map(|&x| ((x - max) as f64).exp()).sum();
                for (j, &p) in a.iter().enumerate() {
                    let want = if (first..end).contains(&j) { ((row[j] - max) as f64).exp() / total } else { 0.0 };
                    assert!((p as f64 - want).abs() <= 1e-6 * want.max(1e-3), "{first}..{end} j {j}: {p} vs {want}");
                }
            }
        }
    }
}
