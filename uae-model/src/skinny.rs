//! Linear layers on inputs of any rank as one `[rows, in]` product (flex
//! runs a 3-D input as one gemm per sequence, each packing the whole weight
//! again), with fast paths for Burn's flex CPU backend: a few rows (a
//! decode step has one per sequence) and many (a prompt, a scoring or an
//! embedding batch). Both the teacher and the BERT encoder use them.
//!
//! A decode step reads every weight once for a handful of rows, so its speed
//! is the memory bandwidth's, not the arithmetic's. gemm 0.19 (flex's
//! matmul) runs such products on one core, at 9-12 GB/s here, and at 4 GB/s
//! for 8 rows times a transposed matrix (the output head tied to the token
//! embeddings); this machine's two cores stream 21 GB/s together. The fast
//! path gives each core a contiguous share of the output columns (or of the
//! embedding rows) and streams the weights once. Each row is computed alone,
//! in the same order whatever the batch and the thread count, so a batched
//! step gives every sequence the numbers it would get by itself.
//!
//! From 12 rows to 64 (a search query, a short prompt) linear layers run on
//! register tiles over packed weights, which sum each element in the same
//! order, so a row's numbers are the same there too.
//!
//! More rows (a prompt, scoring or embedding pass; for `x · eᵀ` more than
//! 32) go to gemm, flex's own matmul
//! kernel, called here with an output buffer of ours: flex allocates every
//! matmul output zeroed and then copies it into a 16-byte-aligned buffer
//! (`FlexTensor::empty` through cubecl's `Bytes::from_bytes_vec`), 4.5% of
//! a scoring profile in memset and memcpy, where gemm overwrites the
//! buffer anyway. Every other case (GPU, autodiff, a weight that is a view)
//! takes Burn's matmul.

use burn::nn::Linear;
use burn::prelude::*;

/// `layer.forward(x)` (`x` `[..., in]`).
pub(crate) fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let [y] = linears([layer], x);
    y
}

/// `layer.forward(x)` for each of `layers` on the same input: on the fast
/// path in one pass over the cores (a decode step wakes the other core once
/// for the query, key and value projections, not three times).
pub(crate) fn linears<const D: usize, const N: usize>(layers: [&Linear; N], x: Tensor<D>) -> [Tensor<D>; N] {
    #[cfg(feature = "flex")]
    if let Some(ys) = fast::linears(layers, &x) {
        return ys;
    }
    // As one [rows, in] matrix: flex runs a 3-D input as one gemm per
    // sequence, each packing the whole weight again.
    let dims = x.dims();
    let rows = dims[..D - 1].iter().product();
    let flat: Tensor<2> = x.reshape([rows, dims[D - 1]]);
    layers.map(|layer| {
        let mut shape = dims;
        shape[D - 1] = layer.weight.dims()[1];
        layer.forward(flat.clone()).reshape(shape)
    })
}

/// `x · eᵀ` for `x` `[rows, k]` and `e` `[n, k]` (the output head tied to the
/// token embeddings).
pub(crate) fn times_transposed(x: Tensor<2>, e: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if let Some(y) = fast::times_transposed(&x, &e) {
        return y;
    }
    x.matmul(e.transpose())
}

#[cfg(feature = "flex")]
mod fast {
    use burn::nn::Linear;
    use burn::prelude::*;
    use rayon::prelude::*;

    use crate::flex::contiguous_f32;

    /// Most rows the fast path's `x · eᵀ` takes (and its linear layers
    /// took until [`MAX_TILE_ROWS`]): at 8 rows it streams 17-19 GB/s where
    /// gemm streams 12, and with `uae synth`'s decode steps of 24 rows (8
    /// passages x 3 questions) on the fast path instead of gemm the whole
    /// run took 1.14x less time (BENCHMARKS.md; gemm packs the weights and
    /// reuses them from cache, which pays more as rows grow; 32 was not
    /// tuned further).
    pub(super) const MAX_ROWS: usize = 32;

    /// Most rows the fast path's linear layers take: their register tiles
    /// ([`accumulate_tiles`]) ran 1.0-1.4x gemm's speed at 64 rows on one
    /// core, and raising the limit from 32 to 64 embedded lone texts of
    /// 5-39 word pieces 1.06x faster (some are over 32 with the special
    /// tokens).
    const MAX_TILE_ROWS: usize = 64;

    /// Weights (in elements) below which one core does the whole product:
    /// handing half of it to another costs more than it saves.
    const PARALLEL_FROM: usize = 1 << 16;

    /// Accumulators (in elements) of one pass over the weight rows: the
    /// rows' output columns of a pass stay in the first-level cache (8 rows
    /// of 1,024 columns, 32 KiB).
    const BLOCK_ELEMENTS: usize = 8 * 1024;

    /// Fewest rows for register tiles over packed weights
    /// ([`accumulate_tiles`]); fewer rows stream the weights row by row
    /// ([`accumulate_rows`]), which reads memory best: at 8 rows the row
    /// kernel was as fast or faster, at 12 about as fast, from 13 to 17 the
    /// tiles 1.0-1.1x ahead, at 20-24 1.1-1.3x (measured on a lone query's
    /// shapes, the encoder's `384 x 384` to `1536 x 384`, and on the 1.5B
    /// writer's `1536 x 8960`).
    const TILE_FROM: usize = 12;

    /// Whole `C`-wide column strips packed at a time by [`accumulate_tiles`]:
    /// each weight row is read as one run of four strips.
    const PANEL_STRIPS: usize = 4;

    thread_local! {
        /// Each thread's packed weight strips, kept between products so that
        /// packing writes into memory already mapped: `4 x C x k` floats for
        /// the widest `k` seen (4.6 MB a thread for the 1.5B writer's
        /// `down_proj`, k = 8,960; 0.8 MB for a MiniLM encoder).
        static PANEL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Rows and width of `x` seen as `[rows, width]`.
    fn rows<const D: usize>(x: &Tensor<D>) -> (usize, usize) {
        let dims = x.dims();
        let width = dims[D - 1];
        (dims[..D - 1].iter().product(), width)
    }

    /// `x` with its last dimension `n`, holding `values`.
    fn shaped<const D: usize>(x: &Tensor<D>, n: usize, values: Vec<f32>) -> Tensor<D> {
        let mut shape = x.dims();
        shape[D - 1] = n;
        Tensor::from_data(TensorData::new(values, shape), &x.device())
    }

    pub(crate) fn linears<const D: usize, const N: usize>(layers: [&Linear; N], x: &Tensor<D>) -> Option<[Tensor<D>; N]> {
        let (m, k) = rows(x);
        if m == 0 || layers.iter().any(|l| l.weight.dims()[0] != k) {
            return None;
        }
        let input = contiguous_f32(x)?;
        let weights: Vec<_> = layers.iter().map(|l| contiguous_f32(&l.weight.val())).collect::<Option<_>>()?;
        let biases: Vec<_> = layers
            .iter()
            .map(|l| l.bias.as_ref().map(|b| contiguous_f32(&b.val())))
            .map(|b| b.map_or(Some(None), |b| b.map(Some)))
            .collect::<Option<_>>()?;
        let products: Vec<Product> = weights
            .iter()
            .zip(&biases)
            .map(|(w, b)| {
                let bias = match b {
                    Some(b) => Some(b.as_slice()?),
                    None => None,
                };
                Some(Product { w: w.as_slice()?, bias, n: w.layout().shape()[1] })
            })
            .collect::<Option<_>>()?;
        let xs = input.as_slice()?;
        let mut values = match m > MAX_TILE_ROWS {
            true => products.iter().map(|p| gemm_times(xs, m, p)).collect::<Vec<_>>(),
            false => rows_times(xs, m, &products),
        }
        .into_iter();
        Some(layers.map(|l| shaped(x, l.weight.dims()[1], values.next().expect("one result per layer"))))
    }

    pub(super) fn times_transposed(x: &Tensor<2>, e: &Tensor<2>) -> Option<Tensor<2>> {
        let (m, k) = rows(x);
        let [n, ek] = e.dims();
        if m == 0 || ek != k {
            return None;
        }
        let (xs, es) = (contiguous_f32(x)?, contiguous_f32(e)?);
        let (xs, es) = (xs.as_slice()?, es.as_slice()?);
        Some(shaped(x, n, if m > MAX_ROWS { gemm_dot(xs, es, m, n) } else { rows_dot(xs, es, m, n) }))
    }

    /// Products below this many multiply-adds run on one core (flex's
    /// threshold for its matmul).
    const GEMM_PARALLEL_FROM: usize = 192 * 192 * 192;

    /// `x · w + bias` for `x` `[m, k]` by gemm, as flex's matmul and bias
    /// add compute it (`bias + x · w`, one rounding each).
    fn gemm_times(x: &[f32], m: usize, p: &Product) -> Vec<f32> {
        gemm_into(x, m, p.w, p.n, (1, p.n as isize), p.bias)
    }

    /// `x · eᵀ` for `x` `[m, k]` and `e` `[n, k]`, row-major, by gemm: `eᵀ`
    /// `[k, n]` is `e` read with its row stride `k` as the column stride.
    fn gemm_dot(x: &[f32], e: &[f32], m: usize, n: usize) -> Vec<f32> {
        gemm_into(x, m, e, n, (x.len() as isize / m as isize, 1), None)
    }

    /// `bias + x · w` for `x` `[m, k]` row-major and `w` `[k, n]` read with
    /// strides `(w_cs, w_rs)` (between columns, between rows), into a
    /// buffer gemm writes without reading it first (without a bias).
    fn gemm_into(x: &[f32], m: usize, w: &[f32], n: usize, (w_cs, w_rs): (isize, isize), bias: Option<&[f32]>) -> Vec<f32> {
        let k = x.len() / m;
        let mut out = Vec::with_capacity(m * n);
        if let Some(bias) = bias {
            for _ in 0..m {
                out.extend_from_slice(bias);
            }
        }
        // SAFETY: `out` has room for `[m, n]` row-major; `x` is `[m, k]`
        // row-major and the callers' strides keep `w`'s reads inside it.
        // Without a bias gemm only writes the output (`read_dst` false), so
        // every element is set before `set_len`; with one it reads the bias
        // rows just written.
        unsafe {
            gemm::gemm(
                m, n, k,
                out.as_mut_ptr(), 1, n as isize, bias.is_some(),
                x.as_ptr(), 1, k as isize,
                w.as_ptr(), w_cs, w_rs,
                1.0, 1.0, false, false, false,
                parallelism(m * n * k),
            );
            out.set_len(m * n);
        }
        out
    }

    /// gemm's threads for a product of `work` multiply-adds.
    fn parallelism(work: usize) -> gemm::Parallelism {
        if work < GEMM_PARALLEL_FROM { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(0) }
    }

    /// One weight matrix `w` `[k, n]` (row-major) and its optional bias `[n]`.
    pub(crate) struct Product<'a> {
        pub(crate) w: &'a [f32],
        pub(crate) bias: Option<&'a [f32]>,
        pub(crate) n: usize,
    }

    /// Splits `0..n` into `parts` contiguous ranges (multiples of 16, so
    /// that every range but the last fills whole vectors; fewer when `n` is
    /// small).
    fn ranges(n: usize, parts: usize) -> Vec<(usize, usize)> {
        let step = n.div_ceil(parts).div_ceil(16).max(1) * 16;
        (0..n).step_by(step).map(|start| (start, (start + step).min(n))).collect()
    }

    /// How many cores share products over `weights` elements in all.
    fn parts(weights: usize) -> usize {
        if weights < PARALLEL_FROM { 1 } else { rayon::current_num_threads().max(1) }
    }

    /// Copies per-range `[m, width]` blocks into one `[m, n]` matrix.
    fn assemble(blocks: impl Iterator<Item = ((usize, usize), Vec<f32>)>, m: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for ((start, end), block) in blocks {
            for (row, values) in out.chunks_exact_mut(n).zip(block.chunks_exact(end - start)) {
                row[start..end].copy_from_slice(values);
            }
        }
        out
    }

    /// `x · w + bias` for `x` `[m, k]` and each of `products`, every core
    /// taking its share of each product's columns in one parallel pass.
    pub(crate) fn rows_times(x: &[f32], m: usize, products: &[Product]) -> Vec<Vec<f32>> {
        let parts = parts(products.iter().map(|p| p.w.len()).sum());
        // One task per core: its range of every product.
        let tasks: Vec<Vec<(usize, (usize, usize))>> = (0..parts)
            .map(|t| products.iter().enumerate().filter_map(|(i, p)| ranges(p.n, parts).get(t).map(|&r| (i, r))).collect())
            .collect();
        let blocks: Vec<Vec<(usize, (usize, usize), Vec<f32>)>> = tasks
            .into_par_iter()
            .map(|task| task.into_iter().map(|(i, range)| (i, range, product_block(x, m, &products[i], range))).collect())
            .collect();
        let mut blocks: Vec<_> = blocks.into_iter().flatten().collect();
        blocks.sort_by_key(|&(i, range, _)| (i, range));
        products
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mine = blocks.iter_mut().filter(|b| b.0 == i).map(|b| (b.1, std::mem::take(&mut b.2)));
                assemble(mine, m, p.n)
            })
            .collect()
    }

    /// Columns `start..end` of `x · w + bias`, as `[m, end - start]`.
    fn product_block(x: &[f32], m: usize, p: &Product, (start, end): (usize, usize)) -> Vec<f32> {
        let width = end - start;
        let mut out = match p.bias {
            Some(b) => b[start..end].repeat(m),
            None => vec![0.0; m * width],
        };
        if m >= TILE_FROM {
            PANEL.with_borrow_mut(|panel| accumulate_tiles(x, p.w, p.n, start, &mut out, panel));
            return out;
        }
        // Output columns per pass: a multiple of 16 (whole vectors).
        let block = (BLOCK_ELEMENTS / m / 16).max(1) * 16;
        for c in (0..width).step_by(block) {
            accumulate_rows(x, p.w, p.n, start + c, start + (c + block).min(width), &mut out, width, c);
        }
        out
    }

    /// `x · eᵀ` for `x` `[m, k]` and `e` `[n, k]`, row-major.
    pub(crate) fn rows_dot(x: &[f32], e: &[f32], m: usize, n: usize) -> Vec<f32> {
        let k = x.len() / m;
        let blocks: Vec<_> = ranges(n, parts(e.len()))
            .into_par_iter()
            .map(|(start, end)| {
                let mut out = vec![0.0; m * (end - start)];
                dot_rows(x, &e[start * k..end * k], k, &mut out);
                ((start, end), out)
            })
            .collect();
        assemble(blocks.into_iter(), m, n)
    }

    /// `a * b + c`, in one instruction where the caller is compiled with FMA.
    #[inline(always)]
    fn fma<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FUSED { a.mul_add(b, c) } else { a * b + c }
    }

    crate::flex::widest_simd! {
        /// Adds `x · w[:, from..to]` to columns `at..` of `out` (`[m, width]`).
        #[allow(clippy::too_many_arguments)]
        fn accumulate_rows(x: &[f32], w: &[f32], n: usize, from: usize, to: usize, out: &mut [f32], width: usize, at: usize)
            => accumulate_rows_body::<true>, accumulate_rows_body::<false>
    }

    crate::flex::widest_simd! {
        /// Adds `x · w[:, from..from + width]` to `out` (`[m, width]`) by
        /// register tiles: strips of two vectors' width (32 columns with
        /// AVX-512, 16 with AVX2), packed into `panel`.
        fn accumulate_tiles(x: &[f32], w: &[f32], n: usize, from: usize, out: &mut [f32], panel: &mut Vec<f32>)
            => accumulate_tiles_body::<32, true>, accumulate_tiles_body::<16, true>, accumulate_tiles_body::<8, false>
    }

    /// Tiles of up to four rows by `C` columns (eight vector accumulators)
    /// that sum over all of `k` in registers before they are stored, so a
    /// weight vector loaded once serves four rows; [`accumulate_rows`] loads
    /// and stores every output vector once per four products. Weights are
    /// first copied, [`PANEL_STRIPS`] strips at a time, into `[k, C]` blocks
    /// read front to back: walking down the weight matrix itself, a row
    /// (for wide matrices a page) a step, the tiles waited on memory and
    /// ran slower than the row kernel wherever the weights were not cached.
    /// Measured alone on one core (a scratch program over these kernels,
    /// weights cycled as a forward pass cycles them): at 20 rows 1.1-1.3x
    /// the row kernel on the encoder's matrices and 1.3-1.8x gemm; at 24
    /// rows 1.1-1.25x the row kernel on the 1.5B writer's, read from
    /// memory; at 8 rows or fewer no faster than the row kernel
    /// ([`TILE_FROM`]). End to end: BENCHMARKS.md. Every element is
    /// `out + Σ_i x[r, i] w[i, c]` summed in order of `i`, as the row kernel
    /// sums it, so a row's bits do not depend on the rows beside it or on
    /// the kernel.
    #[inline(always)]
    fn accumulate_tiles_body<const C: usize, const FUSED: bool>(
        x: &[f32],
        w: &[f32],
        n: usize,
        from: usize,
        out: &mut [f32],
        panel: &mut Vec<f32>,
    ) {
        let k = w.len() / n;
        if k == 0 {
            return;
        }
        let width = out.len() / (x.len() / k);
        let strips = width / C;
        // Grown only: products of other shapes share the buffer.
        let size = k * C * PANEL_STRIPS.min(strips);
        if panel.len() < size {
            panel.resize(size, 0.0);
        }
        let panel = &mut panel[..size];
        for first in (0..strips).step_by(PANEL_STRIPS) {
            let count = (strips - first).min(PANEL_STRIPS);
            let start = from + first * C;
            for i in 0..k {
                for (s, part) in w[i * n + start..][..count * C].chunks_exact(C).enumerate() {
                    panel[(s * k + i) * C..][..C].copy_from_slice(part);
                }
            }
            for (s, strip) in panel.chunks_exact(k * C).take(count).enumerate() {
                strip_tiles::<C, FUSED>(x, k, strip.as_chunks::<C>().0, out, width, (first + s) * C);
            }
        }
        // A ragged end narrower than a strip, row by row.
        let done = strips * C;
        if done < width {
            accumulate_rows_body::<FUSED>(x, w, n, from + done, from + width, out, width, done);
        }
    }

    /// One packed strip `[k, C]` times every row of `x`, added to columns
    /// `at..at + C` of `out` (`[m, width]`), four rows at a time.
    #[inline(always)]
    fn strip_tiles<const C: usize, const FUSED: bool>(x: &[f32], k: usize, strip: &[[f32; C]], out: &mut [f32], width: usize, at: usize) {
        let (mut xs, mut outs) = (x.chunks_exact(4 * k), out.chunks_exact_mut(4 * width));
        for (x, out) in xs.by_ref().zip(outs.by_ref()) {
            tile::<4, C, FUSED>(x, strip, out, width, at);
        }
        let (x, out) = (xs.remainder(), outs.into_remainder());
        match x.len() / k {
            3 => tile::<3, C, FUSED>(x, strip, out, width, at),
            2 => tile::<2, C, FUSED>(x, strip, out, width, at),
            1 => tile::<1, C, FUSED>(x, strip, out, width, at),
            _ => {}
        }
    }

    /// `R` rows of `x` (`[R, k]`) times a packed strip, added to columns
    /// `at..at + C` of `out` (`[R, width]`), accumulated in registers.
    #[inline(always)]
    fn tile<const R: usize, const C: usize, const FUSED: bool>(x: &[f32], strip: &[[f32; C]], out: &mut [f32], width: usize, at: usize) {
        let k = strip.len();
        let mut acc = [[0.0f32; C]; R];
        for (r, a) in acc.iter_mut().enumerate() {
            a.copy_from_slice(&out[r * width + at..][..C]);
        }
        let xs: [&[f32]; R] = std::array::from_fn(|r| &x[r * k..(r + 1) * k]);
        for (i, wi) in strip.iter().enumerate() {
            for (a, xr) in acc.iter_mut().zip(xs) {
                let v = xr[i];
                for (a, &p) in a.iter_mut().zip(wi) {
                    *a = fma::<FUSED>(v, p, *a);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            out[r * width + at..][..C].copy_from_slice(a);
        }
    }

    /// Weight rows four at a time: each output element is loaded and stored
    /// once per four products.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn accumulate_rows_body<const FUSED: bool>(
        x: &[f32],
        w: &[f32],
        n: usize,
        from: usize,
        to: usize,
        out: &mut [f32],
        width: usize,
        at: usize,
    ) {
        let k = w.len() / n;
        let cols = to - from;
        let row = |i: usize| &w[i * n + from..i * n + to];
        let mut i = 0;
        while i + 4 <= k {
            let (w0, w1, w2, w3) = (row(i), row(i + 1), row(i + 2), row(i + 3));
            for (xr, o) in x.chunks_exact(k).zip(out.chunks_exact_mut(width)) {
                let [a0, a1, a2, a3] = [xr[i], xr[i + 1], xr[i + 2], xr[i + 3]];
                let o = &mut o[at..at + cols];
                for ((((o, &p0), &p1), &p2), &p3) in o.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                    *o = fma::<FUSED>(a3, p3, fma::<FUSED>(a2, p2, fma::<FUSED>(a1, p1, fma::<FUSED>(a0, p0, *o))));
                }
            }
            i += 4;
        }
        for i in i..k {
            let w0 = row(i);
            for (xr, o) in x.chunks_exact(k).zip(out.chunks_exact_mut(width)) {
                let a0 = xr[i];
                for (o, &p0) in o[at..at + cols].iter_mut().zip(w0) {
                    *o = fma::<FUSED>(a0, p0, *o);
                }
            }
        }
    }

    crate::flex::widest_simd! {
        /// `out[r, v] = x[r] · e[v]` for the rows `x[r]` and `e[v]` of length `k`.
        fn dot_rows(x: &[f32], e: &[f32], k: usize, out: &mut [f32]) => dot_rows_body::<true>, dot_rows_body::<false>
    }

    /// Lanes of the dot product's accumulators: four 16-wide vectors, so
    /// that four sums are in flight and the adds' latency is hidden.
    const LANES: usize = 64;

    #[inline(always)]
    fn dot_rows_body<const FUSED: bool>(x: &[f32], e: &[f32], k: usize, out: &mut [f32]) {
        let width = e.len() / k;
        for (v, ev) in e.chunks_exact(k).enumerate() {
            for (r, xr) in x.chunks_exact(k).enumerate() {
                let mut acc = [0.0f32; LANES];
                let (xs, es) = (xr.chunks_exact(LANES), ev.chunks_exact(LANES));
                let (xt, et) = (xs.remainder(), es.remainder());
                for (xc, ec) in xs.zip(es) {
                    for ((a, &p), &q) in acc.iter_mut().zip(xc).zip(ec) {
                        *a = fma::<FUSED>(p, q, *a);
                    }
                }
                for ((a, &p), &q) in acc.iter_mut().zip(xt).zip(et) {
                    *a = fma::<FUSED>(p, q, *a);
                }
                // A fixed pairwise tree, the same for every row.
                let mut len = LANES;
                while len > 1 {
                    len /= 2;
                    for l in 0..len {
                        acc[l] += acc[l + len];
                    }
                }
                out[r * width + v] = acc[0];
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn values(len: usize, seed: usize) -> Vec<f32> {
            (0..len).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.0) / 997.0).collect()
        }

        fn exact(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize) -> Vec<f64> {
            let k = x.len() / m;
            let mut out = vec![0.0f64; m * n];
            for r in 0..m {
                for j in 0..n {
                    let mut s = bias.map_or(0.0, |b| b[j] as f64);
                    for i in 0..k {
                        s += x[r * k + i] as f64 * w[i * n + j] as f64;
                    }
                    out[r * n + j] = s;
                }
            }
            out
        }

        fn times(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize) -> Vec<f32> {
            rows_times(x, m, &[Product { w, bias, n }]).remove(0)
        }

        fn transposed(w: &[f32], k: usize, n: usize) -> Vec<f32> {
            let mut t = vec![0.0; k * n];
            for i in 0..k {
                for j in 0..n {
                    t[j * k + i] = w[i * n + j];
                }
            }
            t
        }

        /// Within `k` f32 roundings of the exact sum of absolute products.
        fn close(got: &[f32], want: &[f64], x: &[f32], w: &[f32], m: usize, n: usize) {
            let k = x.len() / m;
            for r in 0..m {
                for j in 0..n {
                    let scale: f64 = (0..k).map(|i| (x[r * k + i] as f64 * w[i * n + j] as f64).abs()).sum::<f64>() + 1.0;
                    let (g, e) = (got[r * n + j] as f64, want[r * n + j]);
                    assert!((g - e).abs() <= scale * k as f64 * 6e-8, "row {r} col {j}: {g} vs {e}");
                }
            }
        }

        #[test]
        fn products_match_exact_arithmetic_for_odd_shapes() {
            // Odd k (a tail after the groups of four), odd n (a ragged last
            // range and block), and a product big enough to use both cores.
            for &(m, k, n) in &[(1, 7, 5), (3, 37, 2085), (8, 130, 1029), (5, 1, 17), (24, 50, 1100), (13, 3, 70), (12, 130, 33)] {
                let (x, w, b) = (values(m * k, 1), values(k * n, 2), values(n, 3));
                close(&times(&x, &w, Some(&b), m, n), &exact(&x, &w, Some(&b), m, n), &x, &w, m, n);
                close(&times(&x, &w, None, m, n), &exact(&x, &w, None, m, n), &x, &w, m, n);
                close(&rows_dot(&x, &transposed(&w, k, n), m, n), &exact(&x, &w, None, m, n), &x, &w, m, n);
            }
        }

        #[test]
        fn a_row_gets_the_same_bits_alone_and_in_a_batch() {
            // 24 rows take the register tiles, one row the row kernel.
            let (m, k, n) = (24, 301, 1200);
            let (x, w) = (values(m * k, 4), values(k * n, 5));
            let e = transposed(&w, k, n);
            let (batched, dotted) = (times(&x, &w, None, m, n), rows_dot(&x, &e, m, n));
            for r in 0..m {
                let row = &x[r * k..(r + 1) * k];
                assert_eq!(&batched[r * n..(r + 1) * n], &times(row, &w, None, 1, n)[..]);
                assert_eq!(&dotted[r * n..(r + 1) * n], &rows_dot(row, &e, 1, n)[..]);
            }
        }

        /// [`accumulate_rows_body`] with its vector unit chosen.
        type RowKernel = fn(&[f32], &[f32], usize, usize, usize, &mut [f32], usize, usize);
        /// [`accumulate_tiles_body`] with its strip width and vector unit chosen.
        type TileKernel = fn(&[f32], &[f32], usize, usize, &mut [f32], &mut Vec<f32>);

        #[test]
        fn tiles_give_the_row_kernel_bits() {
            // 15 rows (tiles of four and one of three), k with a tail after
            // the groups of four, columns from 12 (a second core's range),
            // 80 wide (strips and a ragged end) and 20 (narrower than a
            // 32-column strip).
            let (m, k, n, from) = (15, 37, 100, 12);
            let (x, w) = (values(m * k, 11), values(k * n, 12));
            for width in [80, 20] {
                let rows = |fused: RowKernel| {
                    let mut out = values(m * width, 13);
                    fused(&x, &w, n, from, from + width, &mut out, width, 0);
                    out
                };
                let tiles = |tiled: TileKernel| {
                    let mut out = values(m * width, 13);
                    tiled(&x, &w, n, from, &mut out, &mut Vec::new());
                    out
                };
                let (fused, unfused) = (rows(accumulate_rows_body::<true>), rows(accumulate_rows_body::<false>));
                assert_eq!(tiles(accumulate_tiles_body::<32, true>), fused, "{width} wide");
                assert_eq!(tiles(accumulate_tiles_body::<16, true>), fused, "{width} wide");
                assert_eq!(tiles(accumulate_tiles_body::<8, false>), unfused, "{width} wide");
            }
        }

        #[test]
        fn products_run_together_equal_products_run_alone() {
            let (m, k) = (3, 200);
            let x = values(m * k, 9);
            let shapes = [(700, true), (16, false), (1500, true)];
            let weights: Vec<Vec<f32>> = shapes.iter().enumerate().map(|(i, &(n, _))| values(k * n, 10 + i)).collect();
            let biases: Vec<Vec<f32>> = shapes.iter().enumerate().map(|(i, &(n, _))| values(n, 20 + i)).collect();
            let products: Vec<Product> = shapes
                .iter()
                .zip(weights.iter().zip(&biases))
                .map(|(&(n, with_bias), (w, b))| Product { w, bias: with_bias.then_some(&b[..]), n })
                .collect();
            let together = rows_times(&x, m, &products);
            for (p, got) in products.iter().zip(together) {
                assert_eq!(got, times(&x, p.w, p.bias, m, p.n));
            }
        }

        #[test]
        fn every_dispatch_path_gives_close_results() {
            // Six rows: a tile of four and one of two.
            let (m, k, n) = (6, 96, 80);
            let (x, w) = (values(m * k, 6), values(k * n, 7));
            let want = exact(&x, &w, None, m, n);
            for fused in [accumulate_rows_body::<true>, accumulate_rows_body::<false>] {
                let mut out = vec![0.0; m * n];
                fused(&x, &w, n, 0, n, &mut out, n, 0);
                close(&out, &want, &x, &w, m, n);
            }
            for tiled in [accumulate_tiles_body::<32, true>, accumulate_tiles_body::<16, true>, accumulate_tiles_body::<8, false>] {
                let mut out = vec![0.0; m * n];
                tiled(&x, &w, n, 0, &mut out, &mut Vec::new());
                close(&out, &want, &x, &w, m, n);
            }
            let e = transposed(&w, k, n);
            for fused in [dot_rows_body::<true>, dot_rows_body::<false>] {
                let mut out = vec![0.0; m * n];
                fused(&x, &e, k, &mut out);
                close(&out, &want, &x, &w, m, n);
            }
        }

        #[test]
        fn inference_flex_tensors_take_the_fast_path_and_match_burn() {
            let device = Device::flex();
            let (k, n) = (64, 48);
            let linear = burn::nn::LinearConfig::new(k, n).init(&device);
            // The row kernel, the register tiles (linears), then gemm on one
            // core and on all (past its threshold of 192^3 multiply-adds:
            // 3,000 x 64 x 48).
            for m in [1, MAX_ROWS, MAX_ROWS + 1, MAX_TILE_ROWS, MAX_TILE_ROWS + 1, 3000] {
                let x = Tensor::<3>::from_data(TensorData::new(values(m * k, 8), [m, 1, k]), &device);
                assert!(super::linears([&linear], &x).is_some());
                let want = linear.forward(x.clone());
                let got = super::super::linear(&linear, x.clone());
                assert_eq!(got.dims(), [m, 1, n]);
                if m > MAX_TILE_ROWS {
                    // gemm as flex's matmul and bias add call it.
                    assert_eq!(got.clone().into_data(), want.clone().into_data(), "{m} rows");
                }
                got.into_data().assert_approx_eq::<f32>(&want.into_data(), burn::tensor::Tolerance::absolute(1e-5));
                let weight = linear.weight.val().into_data().try_into_vec::<f32>().unwrap();
                let e = Tensor::<2>::from_data(TensorData::new(transposed(&weight, k, n), [n, k]), &device);
                let flat = x.reshape([m, k]);
                assert!(super::times_transposed(&flat, &e).is_some());
                let got = super::super::times_transposed(flat.clone(), e.clone());
                let want = flat.matmul(e.transpose());
                if m > MAX_ROWS {
                    assert_eq!(got.clone().into_data(), want.clone().into_data(), "{m} rows, transposed");
                }
                got.into_data().assert_approx_eq::<f32>(&want.into_data(), burn::tensor::Tolerance::absolute(1e-5));
            }
        }
    }
}
