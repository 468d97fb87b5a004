using System.Text.Json;
using JestMesh.Cli.Demo;

namespace JestMesh.Cli.Tests.Demo;

[Trait("Tier", "Unit")]
public sealed class MatchUniformTests
{
    private static List<EvalRow> Curve(params double[] acc) => acc.Select((a, i) => new EvalRow((i + 1) * 100, a, 0)).ToList();

    [Fact]
    public void Target_is_the_mean_of_the_last_three_evaluations()
    {
        Assert.Equal((0.80 + 0.81 + 0.82) / 3, MatchUniform.Target(Curve(0.5, 0.7, 0.80, 0.81, 0.82)), 12);
    }

    [Fact]
    public void A_single_lucky_evaluation_does_not_reach_the_target()
    {
        // 0.90 alone is above the target 0.80, but no three consecutive evaluations average 0.80 until step 600.
        var run = Curve(0.60, 0.90, 0.60, 0.79, 0.80, 0.81, 0.85);
        Assert.Equal(600, MatchUniform.Step(run, 0.80));
    }

    [Fact]
    public void A_run_that_never_reaches_the_target_gives_null()
    {
        Assert.Null(MatchUniform.Step(Curve(0.70, 0.75, 0.79, 0.79, 0.79), 0.80));
    }

    [Fact]
    public void Uniform_reaches_its_own_target_at_its_last_evaluation_at_the_latest()
    {
        var uniform = Curve(0.1, 0.3, 0.7, 0.2, 0.81, 0.83, 0.79);
        var step = MatchUniform.Step(uniform, MatchUniform.Target(uniform));
        Assert.NotNull(step);
        Assert.True(step <= 700);
    }

    [Fact]
    public void Fewer_than_three_uniform_evaluations_is_refused_naming_the_count()
    {
        var e = Assert.Throws<ArgumentException>(() => MatchUniform.Target(Curve(0.5, 0.6)));
        Assert.Contains("2 evaluations", e.Message, StringComparison.Ordinal);
    }
}

[Trait("Tier", "Unit")]
public sealed class ComputeAccountingTests
{
    [Theory]
    [InlineData("uniform", 0.8, 1.0)]
    [InlineData("easy-reference", 0.8, 1.0)]
    [InlineData("learnability", 0.8, (640.0 + 384.0) / 384.0)]
    [InlineData("hard-learner", 0.8, (640.0 + 384.0) / 384.0)]
    [InlineData("learnability", 0.5, (256.0 + 384.0) / 384.0)]
    public void Per_step_cost_follows_JEST_A4_with_a_cached_reference(string policy, double f, double expected)
    {
        Assert.Equal(expected, ComputeAccounting.PerStepRelative(policy, 128, f), 12);
    }

    [Fact]
    public void JEST_at_f_08_costs_267_percent_of_a_uniform_step()
    {
        // The paper's Fig. 1 ratio without forward re-use (JEST.md §A.4).
        Assert.Equal(2.67, ComputeAccounting.PerStepRelative("learnability", 128, 0.8), 2);
    }
}

[Trait("Tier", "Unit")]
public sealed class ResultsBuilderTests
{
    internal static RunData Run(string policy, bool independent, double[] acc, long produced = 640, long trained = 128, long filtered = 512, long dead = 0) => new()
    {
        Policy = policy,
        Independent = independent,
        FilterRatio = 0.8,
        Steps = acc.Length * 10,
        BatchSize = 128,
        Eval = acc.Select((a, i) => new EvalRow((i + 1) * 10, a, a / 2)).ToList(),
        StepWallMs = Enumerable.Range(0, acc.Length * 10).Select(i => 10.0 + (i % 3)).ToList(),
        SwappedShare = Enumerable.Range(0, acc.Length * 10).Select(i => i < 10 ? 0.7 : 0.2).ToList(),
        SelectionMs = policy == "uniform" ? [] : [3, 4, 5, 6],
        StallShare = 0.01,
        Produced = produced,
        Trained = trained,
        Filtered = filtered,
        DeadLettered = dead,
    };

    internal static List<RunData> Sample() =>
    [
        Run("uniform", false, [0.50, 0.60, 0.70, 0.75, 0.76, 0.77]),
        Run("learnability", false, [0.65, 0.75, 0.80, 0.82, 0.83, 0.84]),
        Run("learnability", true, [0.55, 0.60, 0.65, 0.70, 0.72, 0.74], produced: 1280, trained: 128, filtered: 512, dead: 640),
    ];

    [Fact]
    public void Steps_to_match_speed_up_and_finals_come_from_the_evaluations()
    {
        var results = ResultsBuilder.Build(Sample(), [], "none");
        var jest = results.Runs[1];
        // Target (0.75 + 0.76 + 0.77) / 3 = 0.76; JEST's 3-eval mean first reaches it at step 30 ((0.65+0.75+0.80)/3 = 0.733 no; step 40: 0.79).
        Assert.Equal(40, jest.StepsToMatchUniform);
        Assert.Equal(60.0 / 40, jest.SpeedUp!.Value, 12);
        Assert.Equal(0.84, jest.FinalZeroShotAcc);
        Assert.Null(results.Runs[2].StepsToMatchUniform);
        Assert.Null(results.Runs[2].SpeedUp);
        Assert.Equal(60, results.Runs[0].StepsToMatchUniform);
        Assert.Equal(jest.SpeedUp!.Value / jest.ComputePerStepRel, jest.ComputeSpeedUp!.Value, 12);
    }

    [Fact]
    public void Wall_time_and_swapped_share_are_means_over_steps()
    {
        var results = ResultsBuilder.Build(Sample(), [], "none");
        Assert.Equal(Enumerable.Range(0, 60).Average(i => 10.0 + (i % 3)), results.Runs[0].WallPerStepMs!.Value, 12);
        Assert.Equal(((10 * 0.7) + (50 * 0.2)) / 60, results.Runs[0].SwappedShareSelected!.Value, 12);
    }

    [Fact]
    public void Accounting_sums_the_runs_and_detects_an_imbalance()
    {
        var balanced = ResultsBuilder.Build(Sample(), [], "none").Accounting;
        Assert.Equal(new Accounting(2560, 384, 1536, 640), balanced);
        Assert.True(balanced.Balances);
        var lost = ResultsBuilder.Build([.. Sample(), Run("hard-learner", false, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], produced: 640, trained: 128, filtered: 500)], [], "none");
        Assert.False(lost.Accounting.Balances);
    }

    [Fact]
    public void Runs_of_different_length_are_refused_naming_the_run()
    {
        var other = Run("hard-learner", false, [0.5, 0.6, 0.7]);
        var e = Assert.Throws<ArgumentException>(() => ResultsBuilder.Build([.. Sample(), other], [], "none"));
        Assert.Contains("hard-learner f=0.8 has T=30", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_uniform_run_there_is_no_baseline()
    {
        Assert.Throws<ArgumentException>(() => ResultsBuilder.Build(Sample().Skip(1).ToList(), [], "none"));
    }

    [Fact]
    public void Windows_average_each_span_between_evaluations()
    {
        var w = ResultsBuilder.Windows([1, 1, 3, 3, 3, 3], [new EvalRow(2, 0, 0), new EvalRow(6, 0, 0)]);
        Assert.Equal([(2, 1.0), (6, 3.0)], w);
    }
}

[Trait("Tier", "Unit")]
public sealed class ReportWriterTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "jestmesh-report-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void Results_json_has_exactly_the_issue_schema()
    {
        var runs = ResultsBuilderTests.Sample();
        var results = ResultsBuilder.Build(runs, [new StageTiming("trainer.step", 60, 12, 11, 20, 0.72)], "test spans");
        ReportWriter.Write(_dir, results, runs, new ReportContext("test", true, ["T = 60"]));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, ReportWriter.ResultsFile)));
        var root = doc.RootElement;
        Assert.Equal(["runs", "accounting", "stages"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["policy", "filter_ratio", "independent", "steps", "batch_size", "eval", "final_zero_shot_acc", "steps_to_match_uniform",
            "compute_per_step_rel", "wall_per_step_ms", "swapped_share_selected"], root.GetProperty("runs")[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal(["step", "zero_shot_acc", "r_at_1"], root.GetProperty("runs")[0].GetProperty("eval")[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal(["produced", "trained", "filtered", "dead_lettered"], root.GetProperty("accounting").EnumerateObject().Select(p => p.Name));
        Assert.Equal(JsonValueKind.Null, root.GetProperty("runs")[2].GetProperty("steps_to_match_uniform").ValueKind);
        Assert.Equal(results.Runs, ReportWriter.Read(Path.Combine(_dir, ReportWriter.ResultsFile)).Runs, new RunResultComparer());
    }

    [Fact]
    public void Report_table_rows_carry_the_results_figures_and_the_plots_are_pngs()
    {
        var runs = ResultsBuilderTests.Sample();
        var results = ResultsBuilder.Build(runs, [new StageTiming("trainer.step", 60, 12, 11, 20, 0.72)], "test spans");
        ReportWriter.Write(_dir, results, runs, new ReportContext("test", true, []));
        var rows = ReportTable.Rows(File.ReadAllText(Path.Combine(_dir, ReportWriter.ReportFile)));
        Assert.Equal(results.Runs.Count, rows.Count);
        foreach (var r in results.Runs)
        {
            var row = rows[r.Name];
            Assert.Equal(Fmt.Pct(r.FinalZeroShotAcc), row["final zero-shot"]);
            Assert.Equal(Fmt.Step(r.StepsToMatchUniform), row["steps to match uniform"]);
            Assert.Equal(Fmt.Times(r.SpeedUp), row["speed-up"]);
            Assert.Equal(Fmt.Ms(r.WallPerStepMs), row["wall / step (ms)"]);
        }

        Assert.Equal("1.50×", rows["JEST f=0.8"]["speed-up"]);
        foreach (var png in new[] { "accuracy_vs_steps.png", "accuracy_vs_compute.png", "swapped_share.png", "selection_latency.png", "stages.png" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(_dir, png));
            Assert.True(bytes.Length > 1000, png);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        }
    }

    [Fact]
    public void Every_plot_has_drawn_content_and_the_stage_plot_shows_its_bars()
    {
        var runs = ResultsBuilderTests.Sample();
        StageTiming[] stages =
        [
            new("ingest.publish", 60, 4, 4, 6, 0.24), new("scoring.process", 60, 30, 28, 45, 1.8), new("selection.select", 40, 3, 3, 4, 0.12),
            new("trainer.step", 60, 12, 11, 20, 0.72), new("publish jestmesh.scored.job.*", 60, 1, 1, 2, 0.06),
        ];
        var results = ResultsBuilder.Build(runs, stages, "test spans");
        ReportWriter.Write(_dir, results, runs, new ReportContext("test", true, []));
        foreach (var png in new[] { "accuracy_vs_steps.png", "accuracy_vs_compute.png", "swapped_share.png", "selection_latency.png", "stages.png" })
        {
            var image = PngContent.Read(Path.Combine(_dir, png));
            // A blank (all white) image has no variance; a plot with axes, labels and data has plenty of dark pixels.
            Assert.True(image.LuminanceStdDev > 20, $"{png}: luminance standard deviation {image.LuminanceStdDev:0.0}, the image is (nearly) blank");
            Assert.True(image.NonWhiteShare > 0.02, $"{png}: only {image.NonWhiteShare:P2} of its pixels are not white");
        }

        // The bars themselves: the longest (scoring.process, 30 ms) alone covers a good part of the data area in steel blue.
        var stagesPng = PngContent.Read(Path.Combine(_dir, "stages.png"));
        Assert.True(stagesPng.Share(ScottPlot.Colors.SteelBlue) > 0.05, $"stages.png: {stagesPng.Share(ScottPlot.Colors.SteelBlue):P2} of its pixels are the bars' colour");
    }

    [Fact]
    public void Report_states_whether_JEST_meets_the_issue_targets()
    {
        var runs = ResultsBuilderTests.Sample();
        var results = ResultsBuilder.Build(runs, [], "none");
        var md = ReportWriter.Markdown(results, new ReportContext("test", true, []) { SpeedUpTarget = 4 }, []);
        Assert.Contains("JEST f=0.8: speed-up 1.50× (target ≥ 4×: **not met**); final +7.00 points against uniform (target ≥ +2: met).", md, StringComparison.Ordinal);
        Assert.Contains("Ranking by final zero-shot accuracy: JEST f=0.8 > uniform > learnability-independent f=0.8.", md, StringComparison.Ordinal);
    }

    private sealed class RunResultComparer : IEqualityComparer<RunResult>
    {
        public bool Equals(RunResult? x, RunResult? y) =>
            x is not null && y is not null && x.Name == y.Name && x.Eval.SequenceEqual(y.Eval) && x.FinalZeroShotAcc == y.FinalZeroShotAcc
            && x.StepsToMatchUniform == y.StepsToMatchUniform && x.WallPerStepMs == y.WallPerStepMs;

        public int GetHashCode(RunResult obj) => obj.Name.GetHashCode(StringComparison.Ordinal);
    }
}
