using JestMesh.Cli.Commands;
using JestMesh.Cli.Experiment;
using JestMesh.Cli.InProcess;
using JestMesh.Curation;
using JestMesh.Models;

namespace JestMesh.Cli.Tests;

/// <summary>Issue 15's protocol arithmetic on hand-computed cases.</summary>
[Trait("Tier", "Unit")]
public sealed class ExperimentProtocolTests
{
    private static List<EvalPoint> Curve(params double[] acc) => acc.Select((a, i) => new EvalPoint((i + 1) * 25, a, 0)).ToList();

    [Fact]
    public void Final_is_the_mean_of_the_last_three_evaluations()
    {
        Assert.Equal((0.80 + 0.82 + 0.81) / 3, ExperimentProtocol.Final(Curve(0.1, 0.5, 0.80, 0.82, 0.81)), 12);
    }

    [Fact]
    public void Steps_to_match_uses_the_trailing_mean_of_three()
    {
        // Target 0.80. Trailing means: @75 (0.70+0.79+0.85)/3 = 0.78, @100 (0.79+0.85+0.77)/3 = 0.8033 → 100.
        var run = Curve(0.70, 0.79, 0.85, 0.77, 0.90);
        Assert.Equal(100, ExperimentProtocol.StepsToMatch(run, 0.80));
        // A single spike above the target is not enough.
        Assert.Null(ExperimentProtocol.StepsToMatch(Curve(0.5, 0.95, 0.5, 0.5), 0.80));
        // Never before the third evaluation.
        Assert.Equal(75, ExperimentProtocol.StepsToMatch(Curve(0.9, 0.9, 0.9), 0.80));
    }

    [Fact]
    public void Speed_ups_in_steps_compute_and_wall_time()
    {
        Assert.Equal(1500.0 / 400, ExperimentProtocol.SpeedUp(1500, 400));
        Assert.Null(ExperimentProtocol.SpeedUp(1500, null));
        // Exact learner scoring at f = 0.8, b = 128: N = 640, 1 + 640/(3·128) = 2.6667 uniform steps per step.
        var exact = ExperimentProtocol.ComputePerStepRel(SelectionPolicy.Learnability, 128, 0.8, 28, new ModelConfig());
        Assert.Equal(1 + (640.0 / 384), exact, 12);
        Assert.Equal(3.75 / exact, ExperimentProtocol.ComputeSpeedUp(3.75, exact)!.Value, 12);
        Assert.Equal(1.0, ExperimentProtocol.ComputePerStepRel(SelectionPolicy.EasyReference, 128, 0.8, 28, new ModelConfig()));
        var cheap = ExperimentProtocol.ComputePerStepRel(SelectionPolicy.Learnability, 128, 0.8, 14, new ModelConfig());
        Assert.Equal(1 + (640.0 * ModelCost.RelativeForward(new ModelConfig(), 14) / 384), cheap, 12);
        // Uniform: 4 steps of 10 ms = 40 ms; the run matches at step 2 after 5 + 15 ms: 40 / 20 = 2.
        Assert.Equal(2.0, ExperimentProtocol.WallSpeedUp([10, 10, 10, 10], [5, 15, 100, 100], 2, 4));
        Assert.Null(ExperimentProtocol.WallSpeedUp([10, 10], [5, 5], null, 2));
        // Through the services the Trainer records no first step: lists hold steps 2..T. Uniform's steps 2..4 take 30 ms;
        // the run matches at step 3 after its steps 2..3, 5 + 15 ms: 30 / 20 = 1.5.
        Assert.Equal(1.5, ExperimentProtocol.WallSpeedUp([10, 10, 10], [5, 15, 100], 3, 4));
        Assert.Null(ExperimentProtocol.WallSpeedUp([10, 10, 10], [5, 15, 100], 1, 4));
    }

    [Fact]
    public void Interval_and_means_over_seeds()
    {
        // Values 1, 2, 3: sd 1, t(2) = 4.303, half-width 4.303/√3.
        Assert.Equal(4.303 / Math.Sqrt(3), ExperimentProtocol.HalfWidth95([1.0, 2.0, 3.0])!.Value, 9);
        Assert.Null(ExperimentProtocol.HalfWidth95([1.0]));
        Assert.Equal(2.0, ExperimentAnalysis.MeanOfAll([1.0, 3.0]));
        Assert.Null(ExperimentAnalysis.MeanOfAll([1.0, null]));
    }

    [Fact]
    public void Spearman_and_top_k_overlap()
    {
        Assert.Equal(1.0, RankCorrelation.Spearman([1, 2, 3, 4], [10, 20, 30, 40]), 12);
        Assert.Equal(-1.0, RankCorrelation.Spearman([1, 2, 3, 4], [4, 3, 2, 1]), 12);
        // Ranks (1,2,3,4) vs (2,1,4,3): d² = 4, ρ = 1 − 6·4/(4·15) = 0.6.
        Assert.Equal(0.6, RankCorrelation.Spearman([1, 2, 3, 4], [2, 1, 4, 3]), 12);
        Assert.Equal([1.5, 1.5, 3], RankCorrelation.Ranks([5, 5, 7]));
        Assert.Equal(0.5, RankCorrelation.TopKOverlap([4, 3, 2, 1], [4, 1, 2, 3], 2));
    }

    [Fact]
    public void Runs_are_ordered_seed_by_seed_with_uniform_first_and_cheap_scoring_only_where_the_learner_scores()
    {
        var specs = ExperimentCommand.ParseSpecs("jest,easy-reference,learnability-independent", "0,1", 0.9, 14, out var problem)!;
        Assert.Null(problem);
        Assert.Equal(8, specs.Count);
        Assert.Equal(new RunSpec(SelectionPolicy.Uniform, false, 0.8, 28, 0), specs[0]);
        Assert.Equal(new RunSpec(SelectionPolicy.Learnability, false, 0.9, 14, 0), specs[1]);
        Assert.Equal(new RunSpec(SelectionPolicy.EasyReference, false, 0.9, 28, 0), specs[2]);
        Assert.Equal(new RunSpec(SelectionPolicy.Learnability, true, 0.9, 14, 0), specs[3]);
        Assert.Equal(1, specs[4].Seed);
        Assert.Equal("jest-f0.9-r14-s0", specs[1].Slug);
        Assert.Null(ExperimentCommand.ParseSpecs("nonsense", "0", 0.8, 28, out problem));
        Assert.Contains("nonsense", problem);
        Assert.Null(ExperimentCommand.ParseSpecs("jest", "0", 0.8, 13, out problem));
    }
}

/// <summary>A finished run (its run.json) is not run again; results are rebuilt from every finished run.</summary>
[Trait("Tier", "Unit")]
public sealed class ExperimentResumeTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "jm-exp-test-" + Guid.NewGuid().ToString("N"));

    private static readonly ProtocolInfo Protocol = new()
    {
        Steps = 100, BatchSize = 128, EvalEvery = 25, EvalExamples = 10_000, Chunks = 16, Gain = 1,
        Pool = "default", DataFingerprint = "f", ReferenceSha256 = "0123456789abcdef0123",
    };

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static RunRecord Fake(RunSpec spec, double[] acc) => RunRecord.From(spec, FakeMetrics(spec, acc));

    private static LearnerMetrics FakeMetrics(RunSpec spec, double[] acc)
    {
        var m = new LearnerMetrics
        {
            Run = spec.Name, Policy = spec.PolicyName, Independent = spec.Independent, FilterRatio = spec.FilterRatio, SuperBatch = 640, BatchSize = 128,
            Chunks = 16, Gain = 1, Greedy = false, Steps = 100, Seed = spec.Seed, DataSeed = 0, SwappedShareOfPool = 0.7, DataFingerprint = "f",
            Reference = "r", Threads = 1, ScoreResolution = spec.ScoreResolution,
        };
        for (var i = 0; i < acc.Length; i++)
        {
            m.Eval.Add(new EvalPoint((i + 1) * 25, acc[i], 0));
        }

        for (var s = 0; s < 100; s++)
        {
            m.StepWallMs.Add(spec.Policy == SelectionPolicy.Uniform ? 10 : 20);
            m.TrainMs.Add(8);
            m.LearnerScoringMs.Add(spec.Policy == SelectionPolicy.Uniform ? 0 : 10);
            m.SwappedShare.Add(0.5);
        }

        m.MeanSwappedShare = 0.5;
        return m;
    }

    [Fact]
    public void A_finished_run_is_not_redone_and_results_cover_every_finished_run()
    {
        var specs = ExperimentCommand.ParseSpecs("jest", "0", 0.8, 28, out _)!;
        var calls = new List<string>();
        RunRecord Train(RunSpec spec, string dir)
        {
            calls.Add(spec.Slug);
            return Fake(spec, spec.Policy == SelectionPolicy.Uniform ? [0.5, 0.6, 0.7, 0.8] : [0.7, 0.8, 0.8, 0.9]);
        }

        var first = new ExperimentRunner(Protocol, _dir, Train, _ => { });
        var results = first.Run(specs, new ModelConfig());
        Assert.Equal(["uniform-f0.8-s0", "jest-f0.8-s0"], calls);
        Assert.Equal(2, first.Trained);

        // Uniform final (0.6+0.7+0.8)/3 = 0.7; JEST's trailing mean at 75 is (0.7+0.8+0.8)/3 = 0.7667 → 100/75.
        var jest = results.Runs.Single(r => r.Policy == "learnability");
        Assert.Equal(75, jest.StepsToMatch);
        Assert.Equal(100.0 / 75, jest.SpeedUp!.Value, 12);
        Assert.Equal(100.0 / 75 / (1 + (640.0 / 384)), jest.ComputeSpeedUp!.Value, 12);
        // Uniform 100 × 10 ms; JEST 75 × 20 ms to its match.
        Assert.Equal(1000.0 / 1500, jest.WallSpeedUp!.Value, 12);
        // In-run time: 20 ms per step over 8 ms per optimiser step = 2.5 uniform steps.
        Assert.Equal(100.0 / 75 / 2.5, jest.TimeSpeedUp!.Value, 12);
        Assert.True(File.Exists(Path.Combine(_dir, "results.json")));
        Assert.True(File.Exists(Path.Combine(_dir, "report.md")));

        // A second invocation with one more seed trains only the new seed's runs.
        calls.Clear();
        var second = new ExperimentRunner(Protocol, _dir, Train, _ => { });
        var more = second.Run(ExperimentCommand.ParseSpecs("jest", "0,1", 0.8, 28, out _)!, new ModelConfig());
        Assert.Equal(["uniform-f0.8-s1", "jest-f0.8-s1"], calls);
        Assert.Equal(2, second.Skipped);
        Assert.Equal(4, more.Runs.Count);
        var row = more.Summary.Single(s => s.Policy == "learnability");
        Assert.Equal(2, row.Seeds);
        Assert.Equal(["0", "1"], row.PerSeed.Keys);
    }

    [Fact]
    public void A_run_of_another_protocol_in_the_directory_is_refused()
    {
        var specs = ExperimentCommand.ParseSpecs("uniform", "0", 0.8, 28, out _)!;
        new ExperimentRunner(Protocol, _dir, (s, _) => Fake(s, [0.5, 0.6, 0.7, 0.8]), _ => { }).Run(specs, new ModelConfig());
        var other = Protocol with { Steps = 200 };
        var e = Assert.Throws<InvalidOperationException>(() =>
            new ExperimentRunner(other, _dir, (s, _) => Fake(s, [0.5, 0.6, 0.7, 0.8]), _ => { }).Run(specs, new ModelConfig()));
        Assert.Contains("another protocol", e.Message);
    }
}
