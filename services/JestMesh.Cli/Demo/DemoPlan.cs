using System.Globalization;
using JestMesh.Curation;
using JestMesh.Protos.V1;

namespace JestMesh.Cli.Demo;

/// <summary>One learner run of the demo: a policy at a filter ratio (and the side the learner scores candidates at: 28 exact, 14 or 7 cheap).</summary>
internal sealed record RunPlan(string Policy, bool Independent, double FilterRatio, int ScoreResolution = JestMesh.Data.ImageSet.Side)
{
    public string Name => RunNames.Of(Policy, Independent, FilterRatio);

    /// <summary>Job name on the broker and directory name: only [A-Za-z0-9_.-].</summary>
    public string Slug => Policies.RunName(Policies.Parse(Policy), Independent)
        + (Policy == RunNames.Uniform ? "" : "-f" + FilterRatio.ToString("0.0#", CultureInfo.InvariantCulture))
        + (ScoreResolution == JestMesh.Data.ImageSet.Side ? "" : "-r" + ScoreResolution.ToString(CultureInfo.InvariantCulture));

    /// <summary>The Trainer's Policy setting (the protobuf enum's C# name).</summary>
    public string TrainerPolicy => Policies.Parse(Policy).ToWire().ToString();
}

/// <summary>
/// What the demo runs. Sized for these 2 cores: the default mirrors the in-process experiment
/// (T = 1,500, b = 128, evaluation every 100 steps on the full 10k test set); --quick trains T = 200
/// steps with an evaluation every 20 steps on the first 2,000 test pairs.
/// </summary>
internal sealed record DemoPlan
{
    public required bool Quick { get; init; }

    public int Steps { get; init; }

    public int EvalEvery { get; init; }

    /// <summary>Test pairs per evaluation (0 = all 10,000).</summary>
    public int EvalLimit { get; init; }

    public int BatchSize { get; init; } = 128;

    public int Chunks { get; init; } = 16;

    /// <summary>Sampling gain: 1, the in-process {1, 10, 100} sweep's choice (the paper's 100 is near-greedy at this scale).</summary>
    public double Gain { get; init; } = 1;

    public int Seed { get; init; }

    public int DataSeed { get; init; }

    public double SwappedShare { get; init; } = 0.7;

    public int CuratedSize { get; init; } = 3000;

    public required IReadOnlyList<RunPlan> Runs { get; init; }

    public static DemoPlan Create(bool quick, bool withF05, int? steps = null, int? evalEvery = null)
    {
        var ratios = withF05 ? new[] { 0.8, 0.5 } : [0.8];
        // uniform draws b of N at random: its learning does not depend on f, so one uniform run is the baseline for every f.
        var runs = new List<RunPlan> { new(RunNames.Uniform, false, 0.8) };
        foreach (var f in ratios)
        {
            runs.Add(new RunPlan(RunNames.Learnability, false, f));
            runs.Add(new RunPlan(RunNames.Learnability, true, f));
            runs.Add(new RunPlan(RunNames.EasyReference, false, f));
            runs.Add(new RunPlan(RunNames.HardLearner, false, f));
        }

        var plan = new DemoPlan
        {
            Quick = quick,
            Steps = steps ?? (quick ? 200 : 1500),
            EvalEvery = evalEvery ?? (quick ? 20 : 100),
            EvalLimit = quick ? 2000 : 0,
            Runs = runs,
        };
        if (plan.Steps / plan.EvalEvery < MatchUniform.Window)
        {
            throw new ArgumentException($"--steps {plan.Steps} with --eval-every {plan.EvalEvery} gives fewer than {MatchUniform.Window} evaluations; steps-to-match needs at least {MatchUniform.Window}.");
        }

        return plan;
    }

    public int SuperBatchSize(double filterRatio) => SuperBatchSizing.SuperBatchSize(BatchSize, filterRatio);

    public IReadOnlyList<string> Describe() =>
    [
        $"T = {Steps} learner steps per run, b = {BatchSize}, seed {Seed}, sampler: {Chunks} chunks (1 when independent), gain {Gain.ToString(CultureInfo.InvariantCulture)}",
        $"evaluation every {EvalEvery} steps on {(EvalLimit == 0 ? "the full 10,000-image test set" : $"the first {EvalLimit} test images")}",
        $"pool: Fashion-MNIST pairs, {SwappedShare:P0} captions swapped, data seed {DataSeed}; reference trained on {CuratedSize} curated pairs",
        $"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC",
    ];
}
