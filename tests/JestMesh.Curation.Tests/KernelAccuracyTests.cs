using System.Runtime.Intrinsics;

namespace JestMesh.Curation.Tests;

[Trait("Tier", "Unit")]
public sealed class KernelAccuracyTests
{
    [Fact]
    public void Vector_exp_matches_Math_exp_on_non_positive_inputs()
    {
        for (double x = -87; x <= 0; x += 0.01953125)
        {
            float got = FastMath.ExpNonPositive(Vector256.Create((float)x)).GetElement(3);
            double want = Math.Exp((float)x);
            Assert.True(Math.Abs(got - want) <= 3e-7 * want, $"exp({x}) = {got}, want {want}");
        }
    }

    [Fact]
    public void Softmax_exp2_matches_Math_exp_over_the_fixed_shift_range()
    {
        // The softmax kernel evaluates 2^t for t = (α·dot − shift)·log2 e ∈ [−80·log2 e, small positive].
        for (double x = -80; x <= 0.5; x += 0.0078125)
        {
            double t = x * 1.4426950408889634;
            float got = SoftmaxKernel.Exp2(Vector256.Create((float)t)).GetElement(6);
            double want = Math.Pow(2, (float)t);
            Assert.True(Math.Abs(got - want) <= 3e-7 * want, $"2^{t} = {got}, want {want}");
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 12, 2)]
    [InlineData(33, 64, 3)]
    [InlineData(64, 5, 4)]
    [InlineData(71, 64, 4)]
    [InlineData(32, 16, 1)]
    public void Softmax_exp_sums_match_a_direct_double_sum(int k, int d, int valid)
    {
        var random = new Random((k * 31) + d);
        int kp = Gemm.Pad(k);
        var a = Enumerable.Range(0, 4 * d).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var cols = Enumerable.Range(0, k * d).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var panel = new float[d * kp];
        Gemm.PackTransposed(cols, d, Enumerable.Range(0, k).ToArray(), panel, kp);
        var col = new float[kp];
        var rows = new float[4];
        const float alpha = -7.5f, shift = 20f;
        // Rows past `valid` repeat row 0, as the callers pass them.
        int Row(int r) => r < valid ? r * d : 0;
        SoftmaxKernel.ExpSums4(ref a[Row(0)], ref a[Row(1)], ref a[Row(2)], ref a[Row(3)], ref panel[0], d, kp, k, alpha, shift, valid, true, ref col[0], rows);
        var wantRows = new double[4];
        for (int j = 0; j < k; j++)
        {
            double wantCol = 0;
            for (int r = 0; r < valid; r++)
            {
                double dot = 0;
                for (int t = 0; t < d; t++)
                {
                    dot += (double)a[Row(r) + t] * cols[(j * d) + t];
                }

                double e = Math.Exp((alpha * dot) - shift);
                wantRows[r] += e;
                wantCol += e;
            }

            Assert.True(Math.Abs(col[j] - wantCol) <= 1e-5 * wantCol, $"col[{j}] = {col[j]}, want {wantCol}");
        }

        for (int r = 0; r < valid; r++)
        {
            Assert.True(Math.Abs(rows[r] - wantRows[r]) <= 1e-5 * wantRows[r], $"row {r} = {rows[r]}, want {wantRows[r]}");
        }

        Assert.All(col.Skip(k), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Vector_log_matches_Math_log_over_the_ratio_range()
    {
        for (double x = 1e-3; x <= 1e3; x *= 1.0137)
        {
            float got = FastMath.Log(Vector256.Create((float)x)).GetElement(5);
            double want = Math.Log((float)x);
            Assert.True(Math.Abs(got - want) <= 3e-7 * Math.Max(1, Math.Abs(want)), $"log({x}) = {got}, want {want}");
        }
    }

    [Theory]
    [InlineData(-200.0)]
    [InlineData(-30.0)]
    [InlineData(-1.5)]
    [InlineData(0.0)]
    [InlineData(2.25)]
    [InlineData(40.0)]
    [InlineData(300.0)]
    public void Vector_softplus_is_stable_and_accurate(double x)
    {
        float got = FastMath.Softplus(Vector256.Create((float)x)).GetElement(0);
        double want = Instances.Softplus((float)x);
        Assert.True(Math.Abs(got - want) <= 1e-6 * Math.Max(1, Math.Abs(want)), $"softplus({x}) = {got}, want {want}");
    }
}
