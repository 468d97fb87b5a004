using System.Numerics.Tensors;

namespace JestMesh.Curation;

/// <summary>Softmax (InfoNCE) conditional scores (JEST §A.6): a candidate's image→text and text→image loss with the selected set as negatives, per model, weighted by the policy.</summary>
/// <remarks>
/// ℓ_m(c|𝒮) = softplus(lse_{k∈𝒮} u_ck − u_cc) + softplus(lse_{k∈𝒮} u_kc − u_cc) with u = α⟨img, txt⟩ (β cancels in a softmax).
/// With 𝒮 empty every such loss is 0, which would make the first chunk uniform. Instead the first chunk
/// uses the whole super-batch as negatives, i.e. each example's ordinary InfoNCE loss in its super-batch
/// (what independent selection would rank by); this costs one streamed O(N²·d) pass and never stores N×N.
/// Later chunks condition on 𝒮 only. The score of a selection is the policy-weighted InfoNCE loss of 𝔅 with 𝔅 as its own negatives.
/// <para>
/// The first chunk is computed model by model (<see cref="InfoNceLosses"/>, each model on its own arithmetic path below), so a
/// model's losses can be supplied instead: the frozen reference's depend on the super-batch only, and Scoring computes them once
/// per super-batch with <see cref="InfoNceLosses.Compute"/>, which runs this same code. Supplied or computed, the scores are the same.
/// </para>
/// <para>
/// Arithmetic. By Cauchy–Schwarz every |u| ≤ shift_m = |α|·max‖img‖·max‖txt‖. When every shift_m ≤ 40 (α = 10 on
/// L2-normalised rows gives 10) each term e^(u − shift) lies in [e^−80, 1], a normal float, so the sums keep one fixed
/// shift: S = Σ e^(u − shift) in one fused dot-product/exp pass, lse = shift + log S, and per candidate only a log
/// (log(1 + w·S) with w = e^(shift − u_cc) is softplus(lse − u_cc)). The first chunk and s(𝔅) need both the row and the
/// column sums of the same block of U = α·Img·Txtᵀ, so each block is computed once for both directions, in row tiles
/// whose count depends on the row count only (results do not depend on the core count). Larger shifts (e.g. CLIP's
/// α = 100) keep a running max per example, merged chunk by chunk.
/// </para>
/// </remarks>
public sealed partial class SoftmaxContrastiveSource : IScoreSource
{
    private readonly ContrastiveEmbeddings[] _models;
    private readonly InfoNceLosses?[] _firstPass;
    private readonly double[] _signs;
    private readonly float[] _shifts;
    private readonly bool _fixedShift;

    // Column blocks of the running-max first pass: fixed, so its sums do not depend on the chunk size.
    private const int FirstPassWidth = 64;

    /// <remarks>firstPass: per model, its first-pass losses when supplied (null: computed in <see cref="IConditionalScores.Initialize"/>).</remarks>
    internal SoftmaxContrastiveSource(SelectionPolicy policy, ContrastiveEmbeddings[] models, double[] signs, InfoNceLosses?[] firstPass)
    {
        Policy = policy;
        _models = models;
        _firstPass = firstPass;
        _signs = signs;
        Count = models[0].Count;
        Dim = models[0].Dim;
        _shifts = new float[models.Length];
        _fixedShift = true;
        for (int m = 0; m < models.Length; m++)
        {
            double bound = LogitBound(models[m]);
            if (!(bound <= float.MaxValue))
            {
                // The kernels compute u in float32: an α this large makes some u ±∞ and the sums NaN.
                throw new ArgumentException($"model {m}: |α|·max‖img‖·max‖txt‖ = {bound:G4} (α = {models[m].Alpha}) overflows float32.", nameof(models));
            }

            _shifts[m] = (float)bound;
            _fixedShift &= _shifts[m] <= SoftmaxKernel.MaxShift;
        }
    }

    /// <summary>Cauchy–Schwarz: |u_ck| ≤ |α|·max‖img‖·max‖txt‖, plus a little for float rounding of the dots: the fixed shift, and what must fit a float32.</summary>
    internal static double LogitBound(ContrastiveEmbeddings model) =>
        (Math.Abs(model.Alpha) * MaxNorm(model.ImageArray, model.Dim) * MaxNorm(model.TextArray, model.Dim) * (1 + 1e-5)) + 1e-6;

    public int Count { get; }

    public int Dim { get; }

    public SelectionPolicy Policy { get; }

    public bool IsPairwiseAdditive => false;

    public IConditionalScores Start(int chunkSize)
    {
        if (chunkSize <= 0 || chunkSize > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, $"chunk size must be in [1, {Count}].");
        }

        return new State(this, chunkSize);
    }

    /// <summary>One model's first pass (every example's InfoNCE loss over the whole super-batch, both directions), on that model's own path.</summary>
    internal static InfoNceLosses FirstPass(ContrastiveEmbeddings model)
    {
        var source = new SoftmaxContrastiveSource(SelectionPolicy.HardLearner, [model], [1.0], [null]);
        var state = new State(source, Math.Min(model.Count, FirstPassWidth));
        return state.FirstPassOf(0);
    }

    private static double MaxNorm(float[] rows, int dim)
    {
        double max = 0;
        for (int i = 0; i < rows.Length; i += dim)
        {
            max = Math.Max(max, TensorPrimitives.Norm(rows.AsSpan(i, dim)));
        }

        return max;
    }

    private sealed partial class State : RowParallel, IConditionalScores
    {
        // Tiles of the symmetric pass (at least two column panels each) are fixed by the row count alone, so sums do not depend on the core count.
        private const int MaxTiles = 8;
        private const int PanelWidth = 64;
        // Column partial sums are folded from float into double every this many rows.
        private const int FlushRows = 64;

        private readonly SoftmaxContrastiveSource _source;
        private readonly int _dim;
        private readonly int _width;
        private readonly bool _fixed;
        private readonly float[][] _panelTxt;
        private readonly float[][] _panelImg;
        private readonly double[][] _diagU;
        // Fixed-shift path: e^(shift − u_cc), so that a loss log(1 + Σ_k e^(u_ck − u_cc)) is log(1 + S·w).
        private readonly double[][] _w;
        // Running log-sum-exp per example, per (model, direction): max and scaled sum (the fixed-shift path uses only the sum, with max = shift).
        private readonly double[][] _max;
        private readonly double[][] _sum;
        private readonly double[][] _loss;
        // First pass: each model's InfoNCE loss over the whole super-batch, image→text and text→image.
        private readonly double[][] _i2t;
        private readonly double[][] _t2i;
        private readonly int[] _missing;
        // Models the symmetric pass covers: all of them, or during the first pass those whose losses were not supplied.
        private readonly ReadOnlyMemory<int> _allModels;
        private ReadOnlyMemory<int> _passModels;
        private readonly int[] _rows;
        private readonly int[] _cols;
        private readonly int[] _selected;
        private readonly float[][] _scratch;
        // Symmetric pass: per tile a packed panel, float column sums, and double row partials over all positions.
        private readonly float[][] _tilePanel;
        private readonly float[][] _tileCol;
        private readonly double[][] _tilePartial;
        private readonly Action<int> _tileBody;
        private int _tileCount;
        private int _tileRowsTotal;
        private int _selectedCount;
        private int _k;
        private int _kp;
        private double? _score;

        public State(SoftmaxContrastiveSource source, int chunkSize)
        {
            _source = source;
            _dim = source.Dim;
            _fixed = source._fixedShift;
            int n = source.Count;
            _width = _fixed ? Gemm.Pad(chunkSize) : Math.Min(Gemm.Pad(n), Math.Max(Gemm.Pad(chunkSize), 64));
            int models = source._models.Length;
            _panelTxt = new float[models][];
            _panelImg = new float[models][];
            _diagU = new double[models][];
            _w = new double[models][];
            _loss = new double[models][];
            _i2t = new double[models][];
            _t2i = new double[models][];
            _missing = new int[models];
            _allModels = Enumerable.Range(0, models).ToArray();
            _passModels = _allModels;
            _max = new double[2 * models][];
            _sum = new double[2 * models][];
            for (int m = 0; m < models; m++)
            {
                _panelTxt[m] = new float[_dim * _width];
                _panelImg[m] = new float[_dim * _width];
                _diagU[m] = new double[n];
                _w[m] = new double[n];
                _loss[m] = new double[n];
                _i2t[m] = new double[n];
                _t2i[m] = new double[n];
                // The fixed-shift path has max = shift throughout and keeps no max.
                _max[2 * m] = _fixed ? [] : new double[n];
                _max[(2 * m) + 1] = _fixed ? [] : new double[n];
                _sum[2 * m] = new double[n];
                _sum[(2 * m) + 1] = new double[n];
            }

            _rows = new int[n];
            _cols = new int[_width];
            _selected = new int[n];
            // Dots of the running-max path; the fixed-shift kernel keeps them in registers.
            _scratch = new float[_fixed ? 0 : MaxParts][];
            for (int p = 0; p < _scratch.Length; p++)
            {
                _scratch[p] = new float[4 * 2 * _width];
            }

            _tilePanel = new float[_fixed ? MaxTiles : 0][];
            _tileCol = new float[_tilePanel.Length][];
            _tilePartial = new double[_tilePanel.Length * models][];
            for (int t = 0; t < _tilePanel.Length; t++)
            {
                _tilePanel[t] = new float[_dim * PanelWidth];
                _tileCol[t] = new float[PanelWidth];
                for (int m = 0; m < models; m++)
                {
                    _tilePartial[(t * models) + m] = new double[n];
                }
            }

            _tileBody = SymmetricTile;
        }

        public double SelectedScore => _score ??= ScoreOfSelected();

        public void Initialize(Span<double> scores)
        {
            int n = _source.Count;
            var models = _source._models;
            var supplied = _source._firstPass;
            for (int m = 0; m < models.Length; m++)
            {
                Diagonal(m);
            }

            // First chunk: each model's InfoNCE loss over the whole super-batch (the positive pair is among the negatives), supplied or computed.
            int missing = 0;
            for (int m = 0; m < models.Length; m++)
            {
                if (supplied[m] is null)
                {
                    _missing[missing++] = m;
                }
            }

            ComputeFirstPass(missing);
            for (int c = 0; c < n; c++)
            {
                double s = 0;
                for (int m = 0; m < models.Length; m++)
                {
                    var i2t = supplied[m]?.ImageToTextArray ?? _i2t[m];
                    var t2i = supplied[m]?.TextToImageArray ?? _t2i[m];
                    s += _source._signs[m] * (i2t[c] + t2i[c]);
                }

                scores[c] = s;
            }

            ResetRunning();
            _selectedCount = 0;
            _score = null;
        }

        /// <summary>The static entry of <see cref="FirstPass"/>: model <paramref name="m"/>'s first-pass losses, in arrays this state hands over.</summary>
        public InfoNceLosses FirstPassOf(int m)
        {
            Diagonal(m);
            _missing[0] = m;
            ComputeFirstPass(1);
            return new InfoNceLosses(_i2t[m], _t2i[m]);
        }

        /// <summary>u_cc of model <paramref name="m"/> for every example, and on the fixed-shift path w = e^(shift − u_cc).</summary>
        private void Diagonal(int m)
        {
            var model = _source._models[m];
            for (int c = 0; c < _source.Count; c++)
            {
                _diagU[m][c] = model.Alpha * (double)TensorPrimitives.Dot(model.ImageArray.AsSpan(c * _dim, _dim), model.TextArray.AsSpan(c * _dim, _dim));
                if (_fixed)
                {
                    _w[m][c] = Math.Exp(_source._shifts[m] - _diagU[m][c]);
                }
            }
        }

        /// <summary>Writes _i2t[m] and _t2i[m] (InfoNCE loss of each direction over the whole super-batch) for the models _missing[0..<paramref name="count"/>); leaves the running sums dirty.</summary>
        /// <remarks>
        /// A model's values depend on that model alone (its own path, tiles fixed by N, blocks of <see cref="FirstPassWidth"/> columns),
        /// never on the other model or the chunk size, so they equal <see cref="InfoNceLosses.Compute"/>'s.
        /// </remarks>
        private void ComputeFirstPass(int count)
        {
            var which = _missing.AsSpan(0, count);
            if (which.IsEmpty)
            {
                return;
            }

            int n = _source.Count;
            var models = _source._models;
            ResetRunning();
            for (int c = 0; c < n; c++)
            {
                _rows[c] = c;
            }

            if (_fixed)
            {
                // Every model is on the fixed shift: one symmetric pass over the models asked for. lse − u_cc = log(S·w).
                _passModels = _missing.AsMemory(0, count);
                SymmetricPass(n);
                _passModels = _allModels;
                foreach (int m in which)
                {
                    for (int c = 0; c < n; c++)
                    {
                        _i2t[m][c] = Math.Log(_sum[2 * m][c] * _w[m][c]);
                        _t2i[m][c] = Math.Log(_sum[(2 * m) + 1][c] * _w[m][c]);
                    }
                }
            }
            else if (models.Length == 1)
            {
                int width = Math.Min(n, FirstPassWidth);
                for (int j0 = 0; j0 < n; j0 += width)
                {
                    int w = Math.Min(width, n - j0);
                    for (int j = 0; j < w; j++)
                    {
                        _cols[j] = j0 + j;
                    }

                    Accumulate(_cols.AsSpan(0, w), n);
                }

                for (int c = 0; c < n; c++)
                {
                    _i2t[0][c] = Lse(0, c) - _diagU[0][c];
                    _t2i[0][c] = Lse(1, c) - _diagU[0][c];
                }
            }
            else
            {
                // Some model is over the fixed-shift bound: each model on its own path, exactly as InfoNceLosses.Compute takes it.
                foreach (int m in which)
                {
                    var losses = FirstPass(models[m]);
                    losses.ImageToTextArray.CopyTo(_i2t[m], 0);
                    losses.TextToImageArray.CopyTo(_t2i[m], 0);
                }
            }
        }

        public void Add(ReadOnlySpan<int> added, ReadOnlySpan<int> candidates, Span<double> scores)
        {
            added.CopyTo(_selected.AsSpan(_selectedCount));
            _selectedCount += added.Length;
            _score = null;
            if (added.Length == 0 || candidates.Length == 0)
            {
                return;
            }

            candidates.CopyTo(_rows);
            for (int j0 = 0; j0 < added.Length; j0 += _width)
            {
                Accumulate(added.Slice(j0, Math.Min(_width, added.Length - j0)), candidates.Length);
            }

            if (_fixed)
            {
                // Here the positive pair is not among the negatives: log(1 + S·w) = softplus(lse − u_cc).
                _ = SumLosses(candidates, scores, withSelf: true);
                return;
            }

            var models = _source._models;
            foreach (int c in candidates)
            {
                double s = 0;
                for (int m = 0; m < models.Length; m++)
                {
                    s += _source._signs[m] * (FastMath.Softplus(Lse(2 * m, c) - _diagU[m][c]) + FastMath.Softplus(Lse((2 * m) + 1, c) - _diagU[m][c]));
                }

                scores[c] = s;
            }
        }

        protected override void ProcessRange(int lo, int hi, int part)
        {
            if (_fixed)
            {
                ProcessRangeFixed(lo, hi);
                return;
            }

            var models = _source._models;
            int d = _dim;
            int kp = _kp;
            var scratch = _scratch[part];
            for (int i = lo; i < hi; i += 2)
            {
                int r0 = _rows[i];
                bool two = i + 1 < hi;
                int r1 = two ? _rows[i + 1] : r0;
                for (int m = 0; m < models.Length; m++)
                {
                    var img = models[m].ImageArray;
                    var txt = models[m].TextArray;
                    float alpha = models[m].Alpha;
                    int o = m * 4 * kp;
                    Gemm.TwoRows(ref img[r0 * d], ref img[r1 * d], ref _panelTxt[m][0], d, kp, ref scratch[o], ref scratch[o + kp]);
                    Gemm.TwoRows(ref txt[r0 * d], ref txt[r1 * d], ref _panelImg[m][0], d, kp, ref scratch[o + (2 * kp)], ref scratch[o + (3 * kp)]);
                    Merge(2 * m, r0, scratch.AsSpan(o, _k), alpha);
                    Merge((2 * m) + 1, r0, scratch.AsSpan(o + (2 * kp), _k), alpha);
                    if (two)
                    {
                        Merge(2 * m, r1, scratch.AsSpan(o + kp, _k), alpha);
                        Merge((2 * m) + 1, r1, scratch.AsSpan(o + (3 * kp), _k), alpha);
                    }
                }
            }
        }

        /// <summary>scores[c] = Σ_m sign_m·(log(w·S_row) + log(w·S_col)) when c is inside the sums, or with log(1 + w·S) when it is not; returns Σ_c scores[c].</summary>
        /// <remarks>Writes nothing when <paramref name="scores"/> is empty. log(w·S) = shift + log S − u_cc = lse − u_cc, and log(1 + w·S) = softplus(lse − u_cc).</remarks>
        private double SumLosses(ReadOnlySpan<int> examples, Span<double> scores, bool withSelf)
        {
            var models = _source._models;
            for (int m = 0; m < models.Length; m++)
            {
                var rowSum = _sum[2 * m];
                var colSum = _sum[(2 * m) + 1];
                var w = _w[m];
                var loss = _loss[m].AsSpan(0, examples.Length);
                for (int i = 0; i < examples.Length; i++)
                {
                    int c = examples[i];
                    loss[i] = withSelf ? (1 + (rowSum[c] * w[c])) * (1 + (colSum[c] * w[c])) : rowSum[c] * colSum[c] * w[c] * w[c];
                }

                TensorPrimitives.Log(loss, loss);
            }

            double total = 0;
            for (int i = 0; i < examples.Length; i++)
            {
                double s = 0;
                for (int m = 0; m < models.Length; m++)
                {
                    s += _source._signs[m] * _loss[m][i];
                }

                total += s;
                if (!scores.IsEmpty)
                {
                    scores[examples[i]] = s;
                }
            }

            return total;
        }

        private double ScoreOfSelected()
        {
            var selected = _selected.AsSpan(0, _selectedCount);
            if (selected.Length == 0)
            {
                return 0;
            }

            ResetRunning(selected);
            selected.CopyTo(_rows);
            var models = _source._models;
            double total = 0;
            if (_fixed)
            {
                SymmetricPass(selected.Length);
                return SumLosses(selected, [], withSelf: false);
            }

            for (int j0 = 0; j0 < selected.Length; j0 += _width)
            {
                Accumulate(selected.Slice(j0, Math.Min(_width, selected.Length - j0)), selected.Length);
            }

            foreach (int c in selected)
            {
                for (int m = 0; m < models.Length; m++)
                {
                    total += _source._signs[m] * (Lse(2 * m, c) - _diagU[m][c] + Lse((2 * m) + 1, c) - _diagU[m][c]);
                }
            }

            return total;
        }
    }
}
