using System.Numerics.Tensors;

using JestMesh.Curation;

namespace JestMesh.Benchmarks.Baseline;

/// <summary>Frozen copy of the softmax source before the fused-kernel rewrite (commit 5d9e564), kept only so benchmarks can time old and new in one process. Softmax (InfoNCE) conditional scores (JEST §A.6): a candidate's image→text and text→image loss with the selected set as negatives, per model, weighted by the policy.</summary>
/// <remarks>
/// ℓ_m(c|𝒮) = softplus(lse_{k∈𝒮} u_ck − u_cc) + softplus(lse_{k∈𝒮} u_kc − u_cc) with u = α⟨img, txt⟩ (β cancels in a softmax).
/// With 𝒮 empty every such loss is 0, which would make the first chunk uniform. Instead the first chunk
/// uses the whole super-batch as negatives, i.e. each example's ordinary InfoNCE loss in its super-batch
/// (what independent selection would rank by); this costs one streamed O(N²·d) pass and never stores N×N.
/// Later chunks condition on 𝒮 only. The score of a selection is the policy-weighted InfoNCE loss of 𝔅 with 𝔅 as its own negatives.
/// </remarks>
public sealed class BaselineSoftmaxSource : IScoreSource
{
    private readonly ContrastiveEmbeddings[] _models;
    private readonly double[] _signs;

    public BaselineSoftmaxSource(SelectionPolicy policy, ContrastiveEmbeddings[] models, double[] signs)
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

    public bool IsPairwiseAdditive => false;

    public IConditionalScores Start(int chunkSize)
    {
        if (chunkSize <= 0 || chunkSize > Count)
        {
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, $"chunk size must be in [1, {Count}].");
        }

        return new State(this, chunkSize);
    }

    private sealed class State : RowParallel, IConditionalScores
    {
        private readonly BaselineSoftmaxSource _source;
        private readonly int _dim;
        private readonly int _width;
        private readonly float[][] _panelTxt;
        private readonly float[][] _panelImg;
        private readonly double[][] _diagU;
        // Running log-sum-exp per example, per (model, direction): max and scaled sum.
        private readonly double[][] _max;
        private readonly double[][] _sum;
        private readonly int[] _rows;
        private readonly int[] _cols;
        private readonly int[] _selected;
        private readonly float[][] _scratch;
        private int _selectedCount;
        private int _k;
        private int _kp;
        private double? _score;

        public State(BaselineSoftmaxSource source, int chunkSize)
        {
            _source = source;
            _dim = source.Dim;
            int n = source.Count;
            _width = Math.Min(Gemm.Pad(n), Math.Max(Gemm.Pad(chunkSize), 64));
            int models = source._models.Length;
            _panelTxt = new float[models][];
            _panelImg = new float[models][];
            _diagU = new double[models][];
            _max = new double[2 * models][];
            _sum = new double[2 * models][];
            for (int m = 0; m < models; m++)
            {
                _panelTxt[m] = new float[_dim * _width];
                _panelImg[m] = new float[_dim * _width];
                _diagU[m] = new double[n];
                _max[2 * m] = new double[n];
                _max[(2 * m) + 1] = new double[n];
                _sum[2 * m] = new double[n];
                _sum[(2 * m) + 1] = new double[n];
            }

            _rows = new int[n];
            _cols = new int[_width];
            _selected = new int[n];
            _scratch = new float[MaxParts][];
            for (int p = 0; p < MaxParts; p++)
            {
                _scratch[p] = new float[4 * 2 * _width];
            }
        }

        public double SelectedScore => _score ??= ScoreOfSelected();

        public void Initialize(Span<double> scores)
        {
            int n = _source.Count;
            var models = _source._models;
            for (int m = 0; m < models.Length; m++)
            {
                var model = models[m];
                for (int c = 0; c < n; c++)
                {
                    _diagU[m][c] = model.Alpha * (double)TensorPrimitives.Dot(model.Image().AsSpan(c * _dim, _dim), model.Text().AsSpan(c * _dim, _dim));
                }
            }

            ResetRunning();
            for (int c = 0; c < n; c++)
            {
                _rows[c] = c;
            }

            for (int j0 = 0; j0 < n; j0 += _width)
            {
                int w = Math.Min(_width, n - j0);
                for (int j = 0; j < w; j++)
                {
                    _cols[j] = j0 + j;
                }

                Accumulate(_cols.AsSpan(0, w), n);
            }

            for (int c = 0; c < n; c++)
            {
                double s = 0;
                for (int m = 0; m < models.Length; m++)
                {
                    // The super-batch includes c itself, so lse − u_cc is the InfoNCE loss directly.
                    s += _source._signs[m] * (Lse(2 * m, c) - _diagU[m][c] + Lse((2 * m) + 1, c) - _diagU[m][c]);
                }

                scores[c] = s;
            }

            ResetRunning();
            _selectedCount = 0;
            _score = null;
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

            var models = _source._models;
            foreach (int c in candidates)
            {
                double s = 0;
                for (int m = 0; m < models.Length; m++)
                {
                    s += _source._signs[m] * (Softplus(Lse(2 * m, c) - _diagU[m][c]) + Softplus(Lse((2 * m) + 1, c) - _diagU[m][c]));
                }

                scores[c] = s;
            }
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
                    var img = models[m].Image();
                    var txt = models[m].Text();
                    int o = m * 4 * kp;
                    Gemm.TwoRows(ref img[r0 * d], ref img[r1 * d], ref _panelTxt[m][0], d, kp, ref scratch[o], ref scratch[o + kp]);
                    Gemm.TwoRows(ref txt[r0 * d], ref txt[r1 * d], ref _panelImg[m][0], d, kp, ref scratch[o + (2 * kp)], ref scratch[o + (3 * kp)]);
                    float alpha = models[m].Alpha;
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

        private static double Softplus(double x) => Math.Max(x, 0) + Math.Log(1 + Math.Exp(-Math.Abs(x)));

        private double Lse(int slot, int c) => _max[slot][c] + Math.Log(_sum[slot][c]);

        private void ResetRunning()
        {
            for (int slot = 0; slot < _max.Length; slot++)
            {
                Array.Fill(_max[slot], double.NegativeInfinity);
                Array.Clear(_sum[slot]);
            }
        }

        private void ResetRunning(ReadOnlySpan<int> only)
        {
            for (int slot = 0; slot < _max.Length; slot++)
            {
                foreach (int c in only)
                {
                    _max[slot][c] = double.NegativeInfinity;
                    _sum[slot][c] = 0;
                }
            }
        }

        /// <summary>Folds the columns <paramref name="cols"/> into the running log-sum-exp of rows _rows[0..rowCount).</summary>
        private void Accumulate(ReadOnlySpan<int> cols, int rowCount)
        {
            _k = cols.Length;
            _kp = Gemm.Pad(_k);
            var models = _source._models;
            for (int m = 0; m < models.Length; m++)
            {
                Gemm.PackTransposed(models[m].Text(), _dim, cols, _panelTxt[m], _kp);
                Gemm.PackTransposed(models[m].Image(), _dim, cols, _panelImg[m], _kp);
            }

            Run(rowCount, 2L * models.Length * _kp * _dim);
        }

        private void Merge(int slot, int c, Span<float> dots, float alpha)
        {
            TensorPrimitives.Multiply(dots, alpha, dots);
            float blockMax = TensorPrimitives.Max(dots);
            TensorPrimitives.Subtract(dots, blockMax, dots);
            TensorPrimitives.Exp(dots, dots);
            double blockSum = TensorPrimitives.Sum(dots);
            double max = _max[slot][c];
            if (blockMax > max)
            {
                _sum[slot][c] = (_sum[slot][c] * Math.Exp(max - blockMax)) + blockSum;
                _max[slot][c] = blockMax;
            }
            else
            {
                _sum[slot][c] += blockSum * Math.Exp(blockMax - max);
            }
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
            for (int j0 = 0; j0 < selected.Length; j0 += _width)
            {
                Accumulate(selected.Slice(j0, Math.Min(_width, selected.Length - j0)), selected.Length);
            }

            double total = 0;
            var models = _source._models;
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
