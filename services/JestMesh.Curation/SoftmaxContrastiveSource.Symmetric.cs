namespace JestMesh.Curation;

/// <summary>The fixed-shift path's symmetric pass: each block of U computed once, row and column exp-sums taken from it.</summary>
public sealed partial class SoftmaxContrastiveSource
{
    private sealed partial class State
    {
        /// <summary>Fixed-shift path of a chunk: adds Σ_{k∈chunk} e^(u_ck − shift) and Σ_k e^(u_kc − shift) to the sums of rows _rows[lo..hi), four at a time.</summary>
        private void ProcessRangeFixed(int lo, int hi)
        {
            var models = _source._models;
            int d = _dim;
            int kp = _kp;
            Span<float> sums = stackalloc float[4];
            for (int i = lo; i < hi; i += 4)
            {
                int valid = Math.Min(4, hi - i);
                int r0 = _rows[i];
                int r1 = valid > 1 ? _rows[i + 1] : r0;
                int r2 = valid > 2 ? _rows[i + 2] : r0;
                int r3 = valid > 3 ? _rows[i + 3] : r0;
                for (int m = 0; m < models.Length; m++)
                {
                    var img = models[m].ImageArray;
                    var txt = models[m].TextArray;
                    float alpha = models[m].Alpha;
                    float shift = _source._shifts[m];
                    // Direction 0: u_ck = α⟨img_c, txt_k⟩; direction 1: u_kc = α⟨img_k, txt_c⟩.
                    for (int dir = 0; dir < 2; dir++)
                    {
                        var a = dir == 0 ? img : txt;
                        var panel = dir == 0 ? _panelTxt[m] : _panelImg[m];
                        SoftmaxKernel.ExpSums4(ref a[r0 * d], ref a[r1 * d], ref a[r2 * d], ref a[r3 * d], ref panel[0], d, kp, _k, alpha, shift, valid, false, ref panel[0], sums);
                        var target = _sum[(2 * m) + dir];
                        target[r0] += sums[0];
                        if (valid > 1)
                        {
                            target[r1] += sums[1];
                        }

                        if (valid > 2)
                        {
                            target[r2] += sums[2];
                        }

                        if (valid > 3)
                        {
                            target[r3] += sums[3];
                        }
                    }
                }
            }
        }

        /// <summary>Fixed-shift path: row and column exp-sums of U = α·Img·Txtᵀ restricted to _rows[0..count) × _rows[0..count), each block of U computed once.</summary>
        /// <remarks>
        /// Row c's sum over k gives direction 0 (u_ck), column c's sum over k gives direction 1 (u_kc). Tiles own column panels,
        /// so each panel is packed once and its column sums are complete within one tile; row sums are per-tile partials added
        /// in tile order afterwards. The tile count depends on <paramref name="count"/> only. Expects _sum[2m+1] zero for these examples.
        /// </remarks>
        private void SymmetricPass(int count)
        {
            _tileRowsTotal = count;
            int panels = (count + PanelWidth - 1) / PanelWidth;
            _tileCount = Math.Clamp(panels / 2, 1, MaxTiles);
            long work = (long)count * count * _passModels.Length * _dim;
            if (_tileCount == 1 || work < (1L << 17))
            {
                for (int t = 0; t < _tileCount; t++)
                {
                    SymmetricTile(t);
                }
            }
            else
            {
                Parallel.For(0, _tileCount, _tileBody);
            }

            var models = _source._models;
            foreach (int m in _passModels.Span)
            {
                var rowSum = _sum[2 * m];
                for (int p = 0; p < count; p++)
                {
                    double s = 0;
                    for (int t = 0; t < _tileCount; t++)
                    {
                        s += _tilePartial[(t * models.Length) + m][p];
                    }

                    rowSum[_rows[p]] = s;
                }
            }
        }

        private void SymmetricTile(int tile)
        {
            int count = _tileRowsTotal;
            int panels = (count + PanelWidth - 1) / PanelWidth;
            int firstPanel = (int)((long)panels * tile / _tileCount);
            int endPanel = (int)((long)panels * (tile + 1) / _tileCount);
            var models = _source._models;
            int d = _dim;
            var panel = _tilePanel[tile];
            var col = _tileCol[tile];
            var rows = _rows.AsSpan(0, count);
            Span<float> sums = stackalloc float[4];
            foreach (int m in _passModels.Span)
            {
                var img = models[m].ImageArray;
                float alpha = models[m].Alpha;
                float shift = _source._shifts[m];
                var colSum = _sum[(2 * m) + 1];
                var partial = _tilePartial[(tile * models.Length) + m];
                Array.Clear(partial, 0, count);
                for (int p = firstPanel; p < endPanel; p++)
                {
                    int j0 = p * PanelWidth;
                    int w = Math.Min(PanelWidth, count - j0);
                    int wp = Gemm.Pad(w);
                    Gemm.PackTransposed(models[m].TextArray, d, rows.Slice(j0, w), panel, wp);
                    Array.Clear(col, 0, wp);
                    for (int i = 0; i < count; i += 4)
                    {
                        int valid = Math.Min(4, count - i);
                        int r0 = rows[i];
                        int r1 = valid > 1 ? rows[i + 1] : r0;
                        int r2 = valid > 2 ? rows[i + 2] : r0;
                        int r3 = valid > 3 ? rows[i + 3] : r0;
                        SoftmaxKernel.ExpSums4(ref img[r0 * d], ref img[r1 * d], ref img[r2 * d], ref img[r3 * d], ref panel[0], d, wp, w, alpha, shift, valid, true, ref col[0], sums);
                        for (int r = 0; r < valid; r++)
                        {
                            partial[i + r] += sums[r];
                        }

                        // Fold the float column sums into double every FlushRows rows.
                        if ((i + 4) % FlushRows == 0 || i + 4 >= count)
                        {
                            for (int j = 0; j < w; j++)
                            {
                                colSum[rows[j0 + j]] += col[j];
                            }

                            Array.Clear(col, 0, wp);
                        }
                    }
                }
            }
        }
    }
}
