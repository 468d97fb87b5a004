using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace JestMesh.Curation;

/// <summary>Sigmoid (SigLIP) scores S = Σ_m sign_m·L_m with L_ij = softplus(−y_ij·u_ij), u_ij = α⟨img_i, txt_j⟩ + β, built only for the rows and columns each chunk adds.</summary>
public sealed class SigmoidContrastiveSource : IScoreSource
{
    private readonly ContrastiveEmbeddings[] _models;
    private readonly float[] _signs;

    internal SigmoidContrastiveSource(SelectionPolicy policy, ContrastiveEmbeddings[] models, float[] signs)
    {
        Policy = policy;
        _models = models;
        _signs = signs;
        Count = models[0].Count;
        Dim = models[0].Dim;
    }

    public int Count { get; }

    public int Dim { get; }

    public SelectionPolicy Policy { get; }

    public bool IsPairwiseAdditive => true;

    public IConditionalScores Start(int chunkSize)
    {
        if (chunkSize <= 0 || chunkSize > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, $"chunk size must be in [1, {Count}].");
        }

        return new State(this, chunkSize);
    }

    /// <summary>Writes S[rows[r], cols[j]] to destination[r·cols.Length + j] using the sampler's own float kernels.</summary>
    public void CopyBlock(ReadOnlySpan<int> rows, ReadOnlySpan<int> cols, Span<float> destination)
    {
        if (destination.Length < rows.Length * cols.Length)
        {
            throw new ArgumentException($"destination has {destination.Length} values; needs {rows.Length}×{cols.Length}.", nameof(destination));
        }

        int d = Dim;
        int kp = Gemm.Pad(cols.Length);
        var panel = new float[d * kp];
        var dots = new float[2 * kp];
        var y = new float[kp];
        var sum = new float[kp];
        foreach (int r in rows)
        {
            CheckIndex(r, nameof(rows));
        }

        foreach (int c in cols)
        {
            CheckIndex(c, nameof(cols));
        }

        for (int r = 0; r < rows.Length; r++)
        {
            for (int j = 0; j < cols.Length; j++)
            {
                y[j] = rows[r] == cols[j] ? 1f : -1f;
            }

            Array.Clear(sum);
            for (int m = 0; m < _models.Length; m++)
            {
                var model = _models[m];
                Gemm.PackTransposed(model.TextArray, d, cols, panel, kp);
                ref float a = ref model.ImageArray[rows[r] * d];
                Gemm.TwoRows(ref a, ref a, ref panel[0], d, kp, ref dots[0], ref dots[kp]);
                var alpha = Vector256.Create(model.Alpha);
                var beta = Vector256.Create(model.Beta);
                var sign = Vector256.Create(_signs[m]);
                for (int j = 0; j < kp; j += 8)
                {
                    var u = Vector256.MultiplyAddEstimate(alpha, Vector256.Create<float>(dots.AsSpan(j)), beta);
                    var loss = FastMath.Softplus(-Vector256.Create<float>(y.AsSpan(j)) * u);
                    (Vector256.Create<float>(sum.AsSpan(j)) + (sign * loss)).CopyTo(sum.AsSpan(j));
                }
            }

            sum.AsSpan(0, cols.Length).CopyTo(destination.Slice(r * cols.Length, cols.Length));
        }
    }

    private void CheckIndex(int i, string name)
    {
        if ((uint)i >= (uint)Count)
        {
            throw new ArgumentOutOfRangeException(name, i, $"index must be in [0, {Count}).");
        }
    }

    private sealed class State : RowParallel, IConditionalScores
    {
        private readonly SigmoidContrastiveSource _source;
        private readonly int _dim;
        private readonly int _kpMax;
        private readonly float[][] _panelTxt;
        private readonly float[][] _panelImg;
        private readonly float[] _mask;
        private readonly float[][] _diagU;
        private readonly int[] _rows;
        private readonly float[] _rowSum;
        private readonly float[][] _scratch;
        private int _kp;
        private double _total;

        public State(SigmoidContrastiveSource source, int chunkSize)
        {
            _source = source;
            _dim = source.Dim;
            _kpMax = Gemm.Pad(chunkSize);
            int models = source._models.Length;
            _panelTxt = new float[models][];
            _panelImg = new float[models][];
            _diagU = new float[models][];
            for (int m = 0; m < models; m++)
            {
                _panelTxt[m] = new float[_dim * _kpMax];
                _panelImg[m] = new float[_dim * _kpMax];
                _diagU[m] = new float[source.Count];
            }

            _mask = new float[_kpMax];
            _rows = new int[source.Count + chunkSize];
            _rowSum = new float[source.Count + chunkSize];
            _scratch = new float[MaxParts][];
            for (int p = 0; p < MaxParts; p++)
            {
                _scratch[p] = new float[4 * 2 * _kpMax];
            }
        }

        public double SelectedScore => _total;

        public void Initialize(Span<double> scores)
        {
            var models = _source._models;
            int d = _dim;
            scores[.._source.Count].Clear();
            for (int m = 0; m < models.Length; m++)
            {
                var model = models[m];
                var diag = _diagU[m];
                double sign = _source._signs[m];
                for (int c = 0; c < diag.Length; c++)
                {
                    float u = (model.Alpha * TensorPrimitives.Dot(model.ImageArray.AsSpan(c * d, d), model.TextArray.AsSpan(c * d, d))) + model.Beta;
                    diag[c] = u;
                    // Matching pair: y = +1, so L_cc = −log σ(u) = softplus(−u).
                    scores[c] += sign * FastMath.Softplus(-(double)u);
                }
            }

            _total = 0;
        }

        public void Add(ReadOnlySpan<int> added, ReadOnlySpan<int> candidates, Span<double> scores)
        {
            int k = added.Length;
            if (k > _kpMax)
            {
                throw new ArgumentException($"added has {k} examples; this selection was started for chunks of at most {_kpMax}.", nameof(added));
            }

            // Δ(c|𝒮) of each newly added example: its diagonal plus its pairs with the earlier chunks.
            foreach (int c in added)
            {
                _total += scores[c];
            }

            if (k == 0)
            {
                return;
            }

            _kp = Gemm.Pad(k);
            var models = _source._models;
            for (int m = 0; m < models.Length; m++)
            {
                Gemm.PackTransposed(models[m].TextArray, _dim, added, _panelTxt[m], _kp);
                Gemm.PackTransposed(models[m].ImageArray, _dim, added, _panelImg[m], _kp);
            }

            for (int j = 0; j < _kp; j++)
            {
                _mask[j] = j < k ? 1f : 0f;
            }

            // The new chunk's own rows ride along after the candidates: their sums give the pairs inside the chunk.
            candidates.CopyTo(_rows);
            added.CopyTo(_rows.AsSpan(candidates.Length));
            int rowCount = candidates.Length + k;
            Run(rowCount, 4L * models.Length * _kp * _dim);

            for (int i = 0; i < candidates.Length; i++)
            {
                scores[candidates[i]] += _rowSum[i];
            }

            // Rows of the chunk summed over its own columns include j = c with y = −1; take that term out.
            double within = 0;
            for (int i = 0; i < k; i++)
            {
                int c = added[i];
                double self = 0;
                for (int m = 0; m < models.Length; m++)
                {
                    self += _source._signs[m] * 2 * FastMath.Softplus((double)_diagU[m][c]);
                }

                within += _rowSum[candidates.Length + i] - self;
            }

            // Each unordered pair {c, c'} appeared in both rows: (S_cc' + S_c'c) twice.
            _total += within / 2;
        }

        protected override void ProcessRange(int lo, int hi, int part)
        {
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
                    // Direction 0: u_ck = α⟨img_c, txt_k⟩ + β (S_ck); direction 1: u_kc = α⟨img_k, txt_c⟩ + β (S_kc).
                    int o = m * 4 * kp;
                    Gemm.TwoRows(ref img[r0 * d], ref img[r1 * d], ref _panelTxt[m][0], d, kp, ref scratch[o], ref scratch[o + kp]);
                    Gemm.TwoRows(ref txt[r0 * d], ref txt[r1 * d], ref _panelImg[m][0], d, kp, ref scratch[o + (2 * kp)], ref scratch[o + (3 * kp)]);
                }

                _rowSum[i] = Reduce(scratch, 0, kp);
                if (two)
                {
                    _rowSum[i + 1] = Reduce(scratch, kp, kp);
                }
            }
        }

        /// <summary>Σ_j Σ_m sign_m·(softplus(u_cj) + softplus(u_jc)) over the real columns (c ≠ k, so y = −1).</summary>
        /// <remarks>softplus(x) = max(x,0) + log(1+e^−|x|): the log terms of all four directions combine into one log of a ratio of factors in [1, 2], so one log serves four exps and cannot overflow.</remarks>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private float Reduce(float[] scratch, int rowOffset, int kp)
        {
            var models = _source._models;
            ref float s = ref MemoryMarshal.GetArrayDataReference(scratch);
            ref float mask = ref MemoryMarshal.GetArrayDataReference(_mask);
            var acc = Vector256<float>.Zero;
            var one = Vector256<float>.One;
            var zero = Vector256<float>.Zero;
            var a0 = Vector256.Create(models[0].Alpha);
            var b0 = Vector256.Create(models[0].Beta);
            if (models.Length == 2)
            {
                // Learnability: sign +1 for the learner (model 0), −1 for the reference (model 1).
                var a1 = Vector256.Create(models[1].Alpha);
                var b1 = Vector256.Create(models[1].Beta);
                for (int j = 0; j < kp; j += 8)
                {
                    nuint o = (nuint)(rowOffset + j);
                    var x0 = Vector256.MultiplyAddEstimate(a0, Vector256.LoadUnsafe(ref s, o), b0);
                    var x1 = Vector256.MultiplyAddEstimate(a0, Vector256.LoadUnsafe(ref s, o + (nuint)(2 * kp)), b0);
                    var x2 = Vector256.MultiplyAddEstimate(a1, Vector256.LoadUnsafe(ref s, o + (nuint)(4 * kp)), b1);
                    var x3 = Vector256.MultiplyAddEstimate(a1, Vector256.LoadUnsafe(ref s, o + (nuint)(6 * kp)), b1);
                    var relu = Vector256.Max(x0, zero) + Vector256.Max(x1, zero) - Vector256.Max(x2, zero) - Vector256.Max(x3, zero);
                    var pl = (one + FastMath.ExpNonPositive(-Vector256.Abs(x0))) * (one + FastMath.ExpNonPositive(-Vector256.Abs(x1)));
                    var pr = (one + FastMath.ExpNonPositive(-Vector256.Abs(x2))) * (one + FastMath.ExpNonPositive(-Vector256.Abs(x3)));
                    var v = relu + FastMath.Log(pl / pr);
                    acc = Vector256.MultiplyAddEstimate(v, Vector256.LoadUnsafe(ref mask, (nuint)j), acc);
                }

                return Vector256.Sum(acc);
            }

            for (int j = 0; j < kp; j += 8)
            {
                nuint o = (nuint)(rowOffset + j);
                var x0 = Vector256.MultiplyAddEstimate(a0, Vector256.LoadUnsafe(ref s, o), b0);
                var x1 = Vector256.MultiplyAddEstimate(a0, Vector256.LoadUnsafe(ref s, o + (nuint)(2 * kp)), b0);
                var relu = Vector256.Max(x0, zero) + Vector256.Max(x1, zero);
                var p = (one + FastMath.ExpNonPositive(-Vector256.Abs(x0))) * (one + FastMath.ExpNonPositive(-Vector256.Abs(x1)));
                acc = Vector256.MultiplyAddEstimate(relu + FastMath.Log(p), Vector256.LoadUnsafe(ref mask, (nuint)j), acc);
            }

            return _source._signs[0] * Vector256.Sum(acc);
        }
    }
}
