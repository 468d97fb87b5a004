using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace JestMesh.Curation;

/// <summary>Fused dot products and exponential sums for the softmax source: Σ_j exp(α·⟨a, B[:, j]⟩ − shift) for four rows at a time, never storing the dots.</summary>
/// <remarks>
/// The shift is a fixed upper bound on α·⟨a, b⟩ (see <see cref="SoftmaxContrastiveSource"/>), so every term lies in
/// (e^−2·shift, ~1] and one float exp per term suffices: no running max, no second pass.
/// </remarks>
internal static class SoftmaxKernel
{
    /// <summary>Largest shift (bound on |α·⟨img, txt⟩|) for which e^(u − shift) ≥ e^−80 stays a normal float.</summary>
    public const float MaxShift = 40f;

    private const float Log2E = 1.44269504088896341f;

    /// <summary>
    /// Four rows at a time (<paramref name="valid"/> of them real; the others repeat a real row and are ignored): rows[r] = Σ_{j&lt;k} exp(α·⟨a_r, B_j⟩ − shift),
    /// and with <paramref name="columns"/> each column's terms from the real rows added into col[j].
    /// </summary>
    /// <remarks>4 rows × 32 columns: 16 accumulators and 8 loads per 16 FMAs (2×32 needs 6 per 8), which AVX-512's 32 vector registers hold.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ExpSums4(
        ref float a0, ref float a1, ref float a2, ref float a3, ref float b, int d, int kp, int k, float alpha, float shift, int valid, bool columns, ref float col, Span<float> rows)
    {
        var scale = Vector256.Create(alpha * Log2E);
        var bias = Vector256.Create(-shift * Log2E);
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        var keep1 = valid > 1 ? Vector256<float>.AllBitsSet : Vector256<float>.Zero;
        var keep2 = valid > 2 ? Vector256<float>.AllBitsSet : Vector256<float>.Zero;
        var keep3 = valid > 3 ? Vector256<float>.AllBitsSet : Vector256<float>.Zero;
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
            var c20 = Vector256<float>.Zero;
            var c21 = Vector256<float>.Zero;
            var c22 = Vector256<float>.Zero;
            var c23 = Vector256<float>.Zero;
            var c30 = Vector256<float>.Zero;
            var c31 = Vector256<float>.Zero;
            var c32 = Vector256<float>.Zero;
            var c33 = Vector256<float>.Zero;
            ref float bj = ref Unsafe.Add(ref b, j);
            for (int t = 0; t < d; t++)
            {
                ref float bt = ref Unsafe.Add(ref bj, t * kp);
                var b0 = Vector256.LoadUnsafe(ref bt);
                var b1 = Vector256.LoadUnsafe(ref bt, 8);
                var b2 = Vector256.LoadUnsafe(ref bt, 16);
                var b3 = Vector256.LoadUnsafe(ref bt, 24);
                var x = Vector256.Create(Unsafe.Add(ref a0, t));
                c00 = Vector256.MultiplyAddEstimate(x, b0, c00);
                c01 = Vector256.MultiplyAddEstimate(x, b1, c01);
                c02 = Vector256.MultiplyAddEstimate(x, b2, c02);
                c03 = Vector256.MultiplyAddEstimate(x, b3, c03);
                x = Vector256.Create(Unsafe.Add(ref a1, t));
                c10 = Vector256.MultiplyAddEstimate(x, b0, c10);
                c11 = Vector256.MultiplyAddEstimate(x, b1, c11);
                c12 = Vector256.MultiplyAddEstimate(x, b2, c12);
                c13 = Vector256.MultiplyAddEstimate(x, b3, c13);
                x = Vector256.Create(Unsafe.Add(ref a2, t));
                c20 = Vector256.MultiplyAddEstimate(x, b0, c20);
                c21 = Vector256.MultiplyAddEstimate(x, b1, c21);
                c22 = Vector256.MultiplyAddEstimate(x, b2, c22);
                c23 = Vector256.MultiplyAddEstimate(x, b3, c23);
                x = Vector256.Create(Unsafe.Add(ref a3, t));
                c30 = Vector256.MultiplyAddEstimate(x, b0, c30);
                c31 = Vector256.MultiplyAddEstimate(x, b1, c31);
                c32 = Vector256.MultiplyAddEstimate(x, b2, c32);
                c33 = Vector256.MultiplyAddEstimate(x, b3, c33);
            }

            bool tail = j + 32 > k;
            var m0 = tail ? Mask(j, k) : Vector256<float>.AllBitsSet;
            var m1 = tail ? Mask(j + 8, k) : Vector256<float>.AllBitsSet;
            var m2 = tail ? Mask(j + 16, k) : Vector256<float>.AllBitsSet;
            var m3 = tail ? Mask(j + 24, k) : Vector256<float>.AllBitsSet;
            var e00 = Exp2(Vector256.MultiplyAddEstimate(c00, scale, bias)) & m0;
            var e01 = Exp2(Vector256.MultiplyAddEstimate(c01, scale, bias)) & m1;
            var e02 = Exp2(Vector256.MultiplyAddEstimate(c02, scale, bias)) & m2;
            var e03 = Exp2(Vector256.MultiplyAddEstimate(c03, scale, bias)) & m3;
            var e10 = Exp2(Vector256.MultiplyAddEstimate(c10, scale, bias)) & m0 & keep1;
            var e11 = Exp2(Vector256.MultiplyAddEstimate(c11, scale, bias)) & m1 & keep1;
            var e12 = Exp2(Vector256.MultiplyAddEstimate(c12, scale, bias)) & m2 & keep1;
            var e13 = Exp2(Vector256.MultiplyAddEstimate(c13, scale, bias)) & m3 & keep1;
            var e20 = Exp2(Vector256.MultiplyAddEstimate(c20, scale, bias)) & m0 & keep2;
            var e21 = Exp2(Vector256.MultiplyAddEstimate(c21, scale, bias)) & m1 & keep2;
            var e22 = Exp2(Vector256.MultiplyAddEstimate(c22, scale, bias)) & m2 & keep2;
            var e23 = Exp2(Vector256.MultiplyAddEstimate(c23, scale, bias)) & m3 & keep2;
            var e30 = Exp2(Vector256.MultiplyAddEstimate(c30, scale, bias)) & m0 & keep3;
            var e31 = Exp2(Vector256.MultiplyAddEstimate(c31, scale, bias)) & m1 & keep3;
            var e32 = Exp2(Vector256.MultiplyAddEstimate(c32, scale, bias)) & m2 & keep3;
            var e33 = Exp2(Vector256.MultiplyAddEstimate(c33, scale, bias)) & m3 & keep3;
            acc0 += (e00 + e01) + (e02 + e03);
            acc1 += (e10 + e11) + (e12 + e13);
            acc2 += (e20 + e21) + (e22 + e23);
            acc3 += (e30 + e31) + (e32 + e33);
            if (columns)
            {
                ref float cj = ref Unsafe.Add(ref col, j);
                (Vector256.LoadUnsafe(ref cj) + ((e00 + e10) + (e20 + e30))).StoreUnsafe(ref cj);
                (Vector256.LoadUnsafe(ref cj, 8) + ((e01 + e11) + (e21 + e31))).StoreUnsafe(ref cj, 8);
                (Vector256.LoadUnsafe(ref cj, 16) + ((e02 + e12) + (e22 + e32))).StoreUnsafe(ref cj, 16);
                (Vector256.LoadUnsafe(ref cj, 24) + ((e03 + e13) + (e23 + e33))).StoreUnsafe(ref cj, 24);
            }
        }

        for (; j < kp; j += 8)
        {
            var c0 = Vector256<float>.Zero;
            var c1 = Vector256<float>.Zero;
            var c2 = Vector256<float>.Zero;
            var c3 = Vector256<float>.Zero;
            ref float bj = ref Unsafe.Add(ref b, j);
            for (int t = 0; t < d; t++)
            {
                var bt = Vector256.LoadUnsafe(ref Unsafe.Add(ref bj, t * kp));
                c0 = Vector256.MultiplyAddEstimate(Vector256.Create(Unsafe.Add(ref a0, t)), bt, c0);
                c1 = Vector256.MultiplyAddEstimate(Vector256.Create(Unsafe.Add(ref a1, t)), bt, c1);
                c2 = Vector256.MultiplyAddEstimate(Vector256.Create(Unsafe.Add(ref a2, t)), bt, c2);
                c3 = Vector256.MultiplyAddEstimate(Vector256.Create(Unsafe.Add(ref a3, t)), bt, c3);
            }

            var mask = Mask(j, k);
            var e0 = Exp2(Vector256.MultiplyAddEstimate(c0, scale, bias)) & mask;
            var e1 = Exp2(Vector256.MultiplyAddEstimate(c1, scale, bias)) & mask & keep1;
            var e2 = Exp2(Vector256.MultiplyAddEstimate(c2, scale, bias)) & mask & keep2;
            var e3 = Exp2(Vector256.MultiplyAddEstimate(c3, scale, bias)) & mask & keep3;
            acc0 += e0;
            acc1 += e1;
            acc2 += e2;
            acc3 += e3;
            if (columns)
            {
                ref float cj = ref Unsafe.Add(ref col, j);
                (Vector256.LoadUnsafe(ref cj) + ((e0 + e1) + (e2 + e3))).StoreUnsafe(ref cj);
            }
        }

        rows[0] = Vector256.Sum(acc0);
        rows[1] = Vector256.Sum(acc1);
        rows[2] = Vector256.Sum(acc2);
        rows[3] = Vector256.Sum(acc3);
    }

    /// <summary>2^x for x in [−120, 8] (Cephes exp2f polynomial on [−½, ½], ~1 ulp); the integer part goes straight into the exponent bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp2(Vector256<float> x)
    {
        // Adding 1.5·2^23 rounds x to an integer n held in the low mantissa bits; (bits << 23) is then n << 23 exactly.
        var magic = Vector256.Create(12582912f);
        var v = x + magic;
        var f = x - (v - magic);
        var p = Vector256.Create(1.535336188319500E-4f);
        p = Vector256.MultiplyAddEstimate(p, f, Vector256.Create(1.339887440266574E-3f));
        p = Vector256.MultiplyAddEstimate(p, f, Vector256.Create(9.618437357674640E-3f));
        p = Vector256.MultiplyAddEstimate(p, f, Vector256.Create(5.550332471162809E-2f));
        p = Vector256.MultiplyAddEstimate(p, f, Vector256.Create(2.402264791363012E-1f));
        p = Vector256.MultiplyAddEstimate(p, f, Vector256.Create(6.931472028550421E-1f));
        p = Vector256.MultiplyAddEstimate(p, f, Vector256<float>.One);
        return (p.AsInt32() + Vector256.ShiftLeft(v.AsInt32(), 23)).AsSingle();
    }

    /// <summary>All-ones lanes for columns j..j+7 below k, zero lanes from k on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Mask(int j, int k) =>
        Vector256.LessThan(Vector256.Create(j) + Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(k)).AsSingle();
}
