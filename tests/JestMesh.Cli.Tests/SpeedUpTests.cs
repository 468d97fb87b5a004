using JestMesh.Models;
using JestMesh.Cli.InProcess;

namespace JestMesh.Cli.Tests;

[Trait("Tier", "Unit")]
public sealed class SpeedUpTests
{
    private static List<EvalPoint> Curve(params double[] acc) =>
        acc.Select((a, i) => new EvalPoint((i + 1) * 100, a, 0, 0)).ToList();

    [Fact]
    public void Baseline_reaches_its_own_target_at_the_last_step()
    {
        var uniform = Curve(0.5, 0.6, 0.7, 0.75, 0.8, 0.79, 0.81);
        var target = SpeedUp.Target(uniform);
        Assert.Equal(0.8, target, 12);
        Assert.Equal(700, SpeedUp.ReachStep(uniform, target));
        Assert.Equal(1.0, SpeedUp.Factor(700, SpeedUp.ReachStep(uniform, target)));
    }

    [Fact]
    public void A_single_spike_does_not_reach_the_target()
    {
        var run = Curve(0.5, 0.9, 0.6, 0.7, 0.7);
        Assert.Null(SpeedUp.ReachStep(run, 0.75));
    }

    [Fact]
    public void A_run_that_holds_the_target_reaches_it_at_the_end_of_the_first_good_window()
    {
        var run = Curve(0.79, 0.81, 0.82, 0.83, 0.83, 0.84);
        Assert.Equal(300, SpeedUp.ReachStep(run, 0.8));
        Assert.Equal(2.0, SpeedUp.Factor(600, 300));
    }

    [Fact]
    public void Too_few_baseline_evaluations_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => SpeedUp.Target(Curve(0.5, 0.6)));
        Assert.Contains("2 evaluations", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Auroc_counts_ranked_pairs_and_ties_half()
    {
        Assert.Equal(1.0, ReferenceTraining.Auroc([0.1f, 0.2f, 0.9f, 0.8f], [false, false, true, true]), 12);
        Assert.Equal(0.0, ReferenceTraining.Auroc([0.9f, 0.8f, 0.1f, 0.2f], [false, false, true, true]), 12);
        Assert.Equal(0.5, ReferenceTraining.Auroc([0.5f, 0.5f], [true, false]), 12);
        Assert.Equal(0.75, ReferenceTraining.Auroc([0.1f, 0.3f, 0.2f, 0.15f], [false, true, false, true]), 12);
    }
}
