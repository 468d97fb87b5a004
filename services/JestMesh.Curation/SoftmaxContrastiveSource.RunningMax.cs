using System.Numerics.Tensors;

namespace JestMesh.Curation;

/// <summary>The running-max log-sum-exp path, kept for |α|·‖img‖·‖txt‖ bounds too large for one fixed shift.</summary>
public sealed partial class SoftmaxContrastiveSource
{
    private sealed partial class State
    {
        private double Lse(int slot, int c) => _max[slot][c] + Math.Log(_sum[slot][c]);

        private void ResetRunning()
        {
            for (int slot = 0; slot < _sum.Length; slot++)
            {
                Array.Fill(_max[slot], double.NegativeInfinity);
                Array.Clear(_sum[slot]);
            }
        }

        private void ResetRunning(ReadOnlySpan<int> only)
        {
            for (int slot = 0; slot < _sum.Length; slot++)
            {
                foreach (int c in only)
                {
                    if (!_fixed)
                    {
                        _max[slot][c] = double.NegativeInfinity;
                    }

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
                Gemm.PackTransposed(models[m].TextArray, _dim, cols, _panelTxt[m], _kp);
                Gemm.PackTransposed(models[m].ImageArray, _dim, cols, _panelImg[m], _kp);
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
    }
}
