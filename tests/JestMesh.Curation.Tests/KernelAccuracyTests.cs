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
