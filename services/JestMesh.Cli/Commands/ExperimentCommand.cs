using System.CommandLine;
using System.Globalization;
using JestMesh.Cli.Experiment;
using JestMesh.Cli.InProcess;
using JestMesh.Curation;
using JestMesh.Models;

namespace JestMesh.Cli.Commands;

/// <summary>
/// <c>jestmesh experiment</c>: issue 15's protocol over policies × seeds, in-process (the loop of
/// <c>train --inproc</c>), resumable; writes DIR/results.json, DIR/report.md and DIR/accuracy_vs_steps.png.
/// </summary>
internal static class ExperimentCommand
{
    public static Command Create()
    {
        var data = new DataSettings();
        var policies = new Option<string>("--policies") { Description = "Comma-separated runs, named as `train` names them: uniform, jest (= learnability), learnability-independent, easy-reference, hard-learner. Uniform is added when missing (every speed-up is against it).", Required = true };
        var seeds = new Option<string>("--seeds") { Description = "Comma-separated seeds (learner init, stream order and sampler).", DefaultValueFactory = _ => "0,1,2" };
        var filter = new Option<double>("--filter-ratio") { Description = "f = 1 − b/N for every curating run.", DefaultValueFactory = _ => 0.8 };
        var resolution = new Option<int>("--score-resolution") { Description = "Image side the learner scores candidates at (28 exact; 14 or 7 cheap, Flexi-JEST): applies to the runs that score with the learner.", DefaultValueFactory = _ => 28 };
        var steps = new Option<int>("--steps") { Description = "T (the protocol: 1500).", DefaultValueFactory = _ => 1500 };
        var evalEvery = new Option<int>("--eval-every") { Description = "Evaluation cadence (the protocol: 25).", DefaultValueFactory = _ => 25 };
        var batch = new Option<int>("--batch-size") { Description = "b (the protocol: 128).", DefaultValueFactory = _ => 128 };
        var chunks = new Option<int>("--chunks") { Description = "Chunks of the joint sampler.", DefaultValueFactory = _ => 16 };
        var gain = new Option<double>("--gain") { Description = "Sampling gain.", DefaultValueFactory = _ => 1 };
        var reference = new Option<string?>("--reference") { Description = "Reference checkpoint (default .jestmesh/reference, or .jestmesh/reference-weblike for --pool weblike; trained there when missing)." };
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads (0 = libtorch default).", DefaultValueFactory = _ => 0 };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing: rebuild results.json, report.md and the plot from the finished runs in DIR." };
        var services = new Option<bool>("--services") { Description = "Run through the services (a private broker, Scoring, Selection, and an Ingest and a Trainer per run, on loopback) instead of the in-process loop; default pool only." };
        var output = new Option<string>("--out") { Description = "Directory of the experiment (runs/, results.json, report.md, plot); reused to resume.", Required = true };

        var command = new Command("experiment", "Issue 15's protocol: policies × seeds, final / steps-to-match / speed-ups per seed; resumable.");
        data.AddTo(command);
        foreach (var o in new Option[] { policies, seeds, filter, resolution, steps, evalEvery, batch, chunks, gain, reference, threads, reportOnly, services, output })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            var throughServices = parse.GetValue(services);
            var specs = ParseSpecs(parse.GetValue(policies)!, parse.GetValue(seeds)!, parse.GetValue(filter), parse.GetValue(resolution), out var problem);
            if (specs is null)
            {
                Console.Error.WriteLine($"experiment: {problem}");
                return 2;
            }

            var dataOptions = data.Read(parse);
            if (throughServices && (dataOptions.Pool != JestMesh.Data.PoolKinds.Default || dataOptions.DuplicateShare > 0))
            {
                Console.Error.WriteLine($"experiment: --services runs the default pool only (Ingest has no --pool or --duplicate-share setting); got {DataSettings.Describe(dataOptions)}.");
                return 2;
            }

            var T = parse.GetValue(steps);
            var b = parse.GetValue(batch);
            var every = parse.GetValue(evalEvery);
            if (T <= 0 || b <= 0 || every <= 0 || T < every * ExperimentProtocol.Window)
            {
                Console.Error.WriteLine($"experiment: --steps {T}, --batch-size {b} and --eval-every {every} must be positive, with at least {ExperimentProtocol.Window} evaluations.");
                return 2;
            }

            Threads.Apply(parse.GetValue(threads));
            var root = Demo.Repo.Locate().Root;
            var referenceDir = Path.GetFullPath(parse.GetValue(reference) ?? Path.Combine(root, ".jestmesh", ReferenceDirectoryName(dataOptions)));
            if (!File.Exists(Path.Combine(referenceDir, ModelCheckpoint.MetadataFile)))
            {
                Console.WriteLine($"experiment: no reference in {referenceDir}; training one on the curated set ({DataSettings.Describe(dataOptions)})");
                ReferenceTraining.Run(new ReferenceSettings(dataOptions, 10, 128, 1e-3, 0, referenceDir));
            }

            var meta = ModelCheckpoint.ReadMetadata(referenceDir);
            var protocol = new ProtocolInfo
            {
                Steps = T,
                BatchSize = b,
                EvalEvery = every,
                EvalExamples = 10_000,
                Chunks = parse.GetValue(chunks),
                Gain = parse.GetValue(gain),
                Pool = dataOptions.Pool,
                DataFingerprint = meta.DataFingerprint,
                ReferenceSha256 = meta.Sha256,
                Path = throughServices ? ProtocolInfo.Services : ProtocolInfo.InProcess,
                WallConvention = throughServices ? ProtocolInfo.ServicesWall : ProtocolInfo.InProcessWall,
            };
            var outDir = Path.GetFullPath(parse.GetValue(output)!);
            void Say(string line) => Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {line}");
            await using var pipeline = throughServices && !parse.GetValue(reportOnly)
                ? await ServicesExperiment.StartAsync(Demo.Repo.Locate(), outDir, referenceDir, Demo.DemoPlan.Create(quick: false, withF05: false, T, every) with
                {
                    BatchSize = b, Chunks = protocol.Chunks, Gain = protocol.Gain, DataSeed = dataOptions.Seed, SwappedShare = dataOptions.SwappedShare,
                    CuratedSize = dataOptions.CuratedSize, EvalLimit = 0,
                }, Say, cancellationToken)
                : null;
            var runner = new ExperimentRunner(protocol, outDir, pipeline is not null ? pipeline.Run : (spec, dir) => RunRecord.From(spec, LearnerLoop.Run(new LearnerSettings
            {
                Policy = spec.Policy,
                Independent = spec.Independent,
                FilterRatio = spec.FilterRatio,
                Chunks = protocol.Chunks,
                BatchSize = protocol.BatchSize,
                Steps = protocol.Steps,
                Seed = spec.Seed,
                Gain = protocol.Gain,
                EvalEvery = protocol.EvalEvery,
                ScoreResolution = spec.ScoreResolution,
                RankCheckEvery = protocol.EvalEvery,
                Data = dataOptions,
                Reference = referenceDir,
                Out = dir,
            })), Say);
            try
            {
                var results = parse.GetValue(reportOnly) ? runner.WriteResults(meta.Config) : runner.Run(specs, meta.Config);
                Console.WriteLine($"experiment: {runner.Trained} run(s) trained, {runner.Skipped} already done; {results.Runs.Count} finished run(s) in {outDir}/results.json, report.md");
                foreach (var s in results.Summary)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {s.Name,-40} seeds {s.Seeds}  final {s.FinalMean * 100:F2} %  speed-up {ExperimentRunner.Fmt(s.SpeedUpMean)}  compute {ExperimentRunner.Fmt(s.ComputeSpeedUpMean)}  wall {ExperimentRunner.Fmt(s.WallSpeedUpMean)}"));
                }

                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or FileNotFoundException or InvalidDataException)
            {
                Console.Error.WriteLine($"experiment: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    /// <summary>The reference directory a pool uses by default.</summary>
    public static string ReferenceDirectoryName(JestMesh.Data.DataOptions data) => data.Pool == JestMesh.Data.PoolKinds.Default ? "reference" : "reference-" + data.Pool;

    /// <summary>The runs of --policies × --seeds, seed by seed (so a partial experiment already compares policies), uniform first in each seed.</summary>
    internal static List<RunSpec>? ParseSpecs(string policies, string seeds, double filterRatio, int scoreResolution, out string? problem)
    {
        problem = null;
        if (!TensorConvert.IsScoringResolution(scoreResolution))
        {
            problem = $"--score-resolution {scoreResolution} must be 7, 14 or 28.";
            return null;
        }

        if (!SuperBatchSizing.IsValidRatio(filterRatio))
        {
            problem = $"--filter-ratio {filterRatio} must be in [0, 1).";
            return null;
        }

        var runs = new List<(SelectionPolicy Policy, bool Independent)>();
        foreach (var name in policies.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Policies.TryParseRun(name, out var policy, out var independent))
            {
                problem = $"--policies: '{name}' is not a run name (uniform, jest, learnability, learnability-independent, easy-reference, hard-learner, ...).";
                return null;
            }

            if (!runs.Contains((policy, independent)))
            {
                runs.Add((policy, independent));
            }
        }

        runs.RemoveAll(r => r.Policy == SelectionPolicy.Uniform);
        runs.Insert(0, (SelectionPolicy.Uniform, false));
        var seedList = new List<int>();
        foreach (var text in seeds.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed) || seed < 0)
            {
                problem = $"--seeds: '{text}' is not a seed (a non-negative integer).";
                return null;
            }

            seedList.Add(seed);
        }

        if (seedList.Count == 0)
        {
            problem = "--seeds is empty.";
            return null;
        }

        // Uniform's batches are drawn from the same super-batch stream whatever f; it is run at f = 0.8, the protocol's baseline.
        return [.. seedList.Distinct().SelectMany(seed => runs.Select(r => new RunSpec(r.Policy, r.Independent,
            r.Policy == SelectionPolicy.Uniform ? 0.8 : filterRatio,
            Policies.NeedsLearner(r.Policy) ? scoreResolution : ExperimentProtocol.FullResolution, seed)))];
    }
}
