using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace JestMesh.Benchmarks.Baseline;

/// <summary>Dot products of rows against a packed d×kp panel (kp a multiple of 8), two rows at a time.</summary>
internal static class Gemm
{
    public static int Pad(int k) => (k + 7) & ~7;

    /// <summary>Packs rows <paramref name="indices"/> of an N×d matrix transposed into a d×kp panel, zero-padding columns ≥ k.</summary>
    public static void PackTransposed(float[] source, int dim, ReadOnlySpan<int> indices, Span<float> panel, int kp)
    {
        panel[..(dim * kp)].Clear();
        for (int j = 0; j < indices.Length; j++)
        {
            var row = source.AsSpan(indices[j] * dim, dim);
            for (int t = 0; t < dim; t++)
            {
                panel[(t * kp) + j] = row[t];
            }
        }
    }

    /// <summary>o0[j] = a0·B[:, j] and o1[j] = a1·B[:, j] for j &lt; kp.</summary>
    /// <remarks>Two rows × 32 columns keeps 8 independent FMA chains in flight, enough to cover FMA latency on both ports.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void TwoRows(ref float a0, ref float a1, ref float b, int d, int kp, ref float o0, ref float o1)
    {
        int j = 0;
        for (; j + 32 <= kp; j += 32)
        {
            var c00 = Vector256<float>.Zero;
            var c01 = Vector256<float>.Zero;
            var c02 = Vector256<float>.Zero;
            var c03 = Vector256<float>.Zero;
            var c10 = Vector256<float>.Zero;
            var c11 = Vector256<float>.Zero;
            var c12 = Vector256<float>.Zero;
            var c13 = Vector256<float>.Zero;
            ref float bj = ref Unsafe.Add(ref b, j);
            for (int t = 0; t < d; t++)
            {
                var x0 = Vector256.Create(Unsafe.Add(ref a0, t));
                var x1 = Vector256.Create(Unsafe.Add(ref a1, t));
                ref float bt = ref Unsafe.Add(ref bj, t * kp);
                var b0 = Vector256.LoadUnsafe(ref bt);
                var b1 = Vector256.LoadUnsafe(ref bt, 8);
                var b2 = Vector256.LoadUnsafe(ref bt, 16);
                var b3 = Vector256.LoadUnsafe(ref bt, 24);
                c00 = Vector256.MultiplyAddEstimate(x0, b0, c00);
                c01 = Vector256.MultiplyAddEstimate(x0, b1, c01);
                c02 = Vector256.MultiplyAddEstimate(x0, b2, c02);
                c03 = Vector256.MultiplyAddEstimate(x0, b3, c03);
                c10 = Vector256.MultiplyAddEstimate(x1, b0, c10);
                c11 = Vector256.MultiplyAddEstimate(x1, b1, c11);
                c12 = Vector256.MultiplyAddEstimate(x1, b2, c12);
                c13 = Vector256.MultiplyAddEstimate(x1, b3, c13);
            }

            c00.StoreUnsafe(ref o0, (nuint)j);
            c01.StoreUnsafe(ref o0, (nuint)(j + 8));
            c02.StoreUnsafe(ref o0, (nuint)(j + 16));
            c03.StoreUnsafe(ref o0, (nuint)(j + 24));
            c10.StoreUnsafe(ref o1, (nuint)j);
            c11.StoreUnsafe(ref o1, (nuint)(j + 8));
            c12.StoreUnsafe(ref o1, (nuint)(j + 16));
            c13.StoreUnsafe(ref o1, (nuint)(j + 24));
        }

        for (; j < kp; j += 8)
        {
            var c0 = Vector256<float>.Zero;
            var c1 = Vector256<float>.Zero;
            ref float bj = ref Unsafe.Add(ref b, j);
            for (int t = 0; t < d; t++)
            {
                var bt = Vector256.LoadUnsafe(ref Unsafe.Add(ref bj, t * kp));
                c0 = Vector256.MultiplyAddEstimate(Vector256.Create(Unsafe.Add(ref a0, t)), bt, c0);
                c1 = Vector256.MultiplyAddEstimate(Vector256.Create(Unsafe.Add(ref a1, t)), bt, c1);
            }

            c0.StoreUnsafe(ref o0, (nuint)j);
            c1.StoreUnsafe(ref o1, (nuint)j);
        }
    }
}
