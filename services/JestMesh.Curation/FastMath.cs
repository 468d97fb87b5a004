using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace JestMesh.Curation;

/// <summary>Vectorised exp and log for the ranges the sigmoid kernel needs (Cephes single-precision polynomials, ~1 ulp).</summary>
internal static class FastMath
{
    /// <summary>exp(x) for x ≤ 0; inputs below −87 return ≈ e^−87 instead of a denormal, which is invisible inside log(1 + e).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpNonPositive(Vector256<float> x)
    {
        x = Vector256.Max(x, Vector256.Create(-87f));
        var n = Vector256.Round(x * Vector256.Create(1.44269504088896341f));
        var r = Vector256.MultiplyAddEstimate(n, Vector256.Create(-0.693359375f), x);
        r = Vector256.MultiplyAddEstimate(n, Vector256.Create(2.12194440e-4f), r);
        var p = Vector256.Create(1.9875691500E-4f);
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(1.3981999507E-3f));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(8.3334519073E-3f));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(4.1665795894E-2f));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(1.6666665459E-1f));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(5.0000001201E-1f));
        var y = Vector256.MultiplyAddEstimate(p, r * r, r) + Vector256<float>.One;
        var bits = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23);
        return y * bits.AsSingle();
    }

    /// <summary>Natural log of positive, normal, finite x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Log(Vector256<float> x)
    {
        var bits = x.AsInt32();
        var e = Vector256.ShiftRightArithmetic(bits, 23) - Vector256.Create(127);
        var m = ((bits & Vector256.Create(0x007FFFFF)) | Vector256.Create(0x3F800000)).AsSingle();
        // Keep the mantissa in [√½, √2) so the polynomial argument stays small.
        var big = Vector256.GreaterThan(m, Vector256.Create(1.41421356f));
        m = Vector256.ConditionalSelect(big, m * Vector256.Create(0.5f), m);
        var ef = Vector256.ConvertToSingle(e) + (big & Vector256<float>.One);
        var z = m - Vector256<float>.One;
        var p = Vector256.Create(7.0376836292E-2f);
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(-1.1514610310E-1f));
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(1.1676998740E-1f));
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(-1.2420140846E-1f));
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(1.4249322787E-1f));
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(-1.6668057665E-1f));
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(2.0000714765E-1f));
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(-2.4999993993E-1f));
        p = Vector256.MultiplyAddEstimate(p, z, Vector256.Create(3.3333331174E-1f));
        var z2 = z * z;
        var y = z * z2 * p;
        y = Vector256.MultiplyAddEstimate(ef, Vector256.Create(-2.12194440e-4f), y);
        y = Vector256.MultiplyAddEstimate(z2, Vector256.Create(-0.5f), y);
        return Vector256.MultiplyAddEstimate(ef, Vector256.Create(0.693359375f), z + y);
    }

    /// <summary>softplus(x) = log(1 + eˣ) = max(x, 0) + log(1 + e^−|x|), stable for any finite x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Softplus(Vector256<float> x) =>
        Vector256.Max(x, Vector256<float>.Zero) + Log(Vector256<float>.One + ExpNonPositive(-Vector256.Abs(x)));

    /// <summary>Scalar softplus in double, for diagonals and small corrections.</summary>
    public static double Softplus(double x) => Math.Max(x, 0) + Math.Log(1 + Math.Exp(-Math.Abs(x)));
}
