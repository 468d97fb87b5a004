using System.CommandLine;
using JestMesh.Cli.InProcess;
using JestMesh.Curation;
using JestMesh.Learning;

namespace JestMesh.Cli.Commands;

/// <summary><c>jestmesh train --inproc</c>: the learner loop with JEST selection, all in one process.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var data = new DataSettings();
        var inproc = new Option<bool>("--inproc") { Description = "Run learner, scoring and selection in this process (no services)." };
        var policy = new Option<string>("--policy") { Description = string.Join(" | ", Policies.Names), Required = true };
        var independent = new Option<bool>("--independent") { Description = "Independent selection (1 chunk, diagonal scores only) instead of joint." };
        var filter = new Option<double>("--filter-ratio") { Description = "f = 1 − b/N: the share of each super-batch filtered out.", DefaultValueFactory = _ => 0.8 };
        var chunks = new Option<int>("--chunks") { Description = "Chunks of the joint sampler (must divide the batch size).", DefaultValueFactory = _ => 16 };
        var batch = new Option<int>("--batch-size") { Description = "b: examples trained on per step.", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "T: learner steps.", DefaultValueFactory = _ => 1500 };
        var seed = new Option<int>("--seed") { Description = "Seed of learner init, data stream and sampler.", DefaultValueFactory = _ => 0 };
        var gain = new Option<double>("--gain") { Description = "Sampling gain: draws ∝ exp(gain·Δ). Default 1, chosen by the {1,10,100} sweep (100 is near-greedy here).", DefaultValueFactory = _ => 1 };
        var greedy = new Option<bool>("--greedy") { Description = "No Gumbel noise: deterministic top-k per chunk." };
        var evalEvery = new Option<int>("--eval-every") { Description = "Steps between test-set evaluations.", DefaultValueFactory = _ => 100 };
        var record = new Option<int>("--record-batches") { Description = "Write the selected example ids of the first K steps to metrics.json (\"batches\"), to compare with a pipeline run.", DefaultValueFactory = _ => 0 };
        var lr = new Option<double>("--lr") { Description = "Peak AdamW learning rate.", DefaultValueFactory = _ => 1e-3 };
        var scoreResolution = new Option<int>("--score-resolution") { Description = "Image side the learner scores candidates at: 28 exact, 14 or 7 cheap (Flexi-JEST; training stays at 28).", DefaultValueFactory = _ => 28 };
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads (0 = libtorch default).", DefaultValueFactory = _ => 0 };
        var reference = new Option<string>("--reference") { Description = "Reference checkpoint directory (from `reference train`).", Required = true };
        var output = new Option<string>("--out") { Description = "Directory for metrics.json.", Required = true };
        var shards = new Option<string>("--data") { Description = "Train on a directory of WebDataset .tar shards (e.g. OUT/pool of `data wds`) instead of the built-in pool, streamed in the shard order of --seed; evaluation stays on the Fashion-MNIST test set.", DefaultValueFactory = _ => "" };
        var asShards = new Option<int>("--as-shards") { Description = "Stream the built-in pool in the order --data streams the shards `data wds --shard-size S` writes (to compare the two sources); 0 = the usual whole-pool order.", DefaultValueFactory = _ => 0 };

        var command = new Command("train", "Train a learner on the noisy pool with curated batches; writes metrics.json.");
        data.AddTo(command);
        foreach (var o in new Option[] { inproc, policy, independent, filter, chunks, batch, steps, seed, gain, greedy, evalEvery, record, lr, scoreResolution, threads, reference, output, shards, asShards })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse =>
        {
            if (!parse.GetValue(inproc))
            {
                Console.Error.WriteLine("train: only --inproc is implemented by this command; the distributed learner is the JestMesh.Trainer service.");
                return 2;
            }

            var policyText = parse.GetValue(policy)!;
            if (!Policies.TryParse(policyText, out var chosen))
            {
                Console.Error.WriteLine($"--policy '{policyText}' is not one of {string.Join(", ", Policies.Names)}.");
                return 2;
            }

            var settings = new LearnerSettings
            {
                Policy = chosen,
                Independent = parse.GetValue(independent),
                FilterRatio = parse.GetValue(filter),
                Chunks = parse.GetValue(chunks),
                BatchSize = parse.GetValue(batch),
                Steps = parse.GetValue(steps),
                Seed = parse.GetValue(seed),
                Gain = parse.GetValue(gain),
                Greedy = parse.GetValue(greedy),
                EvalEvery = parse.GetValue(evalEvery),
                RecordBatches = parse.GetValue(record),
                LearningRate = parse.GetValue(lr),
                ScoreResolution = parse.GetValue(scoreResolution),
                RankCheckEvery = parse.GetValue(evalEvery),
                Data = data.Read(parse),
                Reference = parse.GetValue(reference)!,
                Out = parse.GetValue(output)!,
                WebDataset = parse.GetValue(shards) ?? "",
                AsShards = parse.GetValue(asShards),
            };
            var problem = Validate(settings);
            if (problem is not null)
            {
                Console.Error.WriteLine(problem);
                return 2;
            }

            Threads.Apply(parse.GetValue(threads));
            try
            {
                var m = LearnerLoop.Run(settings);
                JsonFiles.Write(Path.Combine(settings.Out, "metrics.json"), m);
                var last = m.Eval[^1];
                Console.WriteLine($"{m.Run}: zero-shot {last.ZeroShotAcc:P2}, R@1 {last.RAt1:P2}, {m.MeanStepMs:F1} ms/step, " +
                    $"swapped among selected {m.MeanSwappedShare:P1} ({m.Threads} threads) → {settings.Out}/metrics.json");
                return 0;
            }
            catch (BundleException e)
            {
                Console.Error.WriteLine($"train: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is InvalidOperationException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException)
            {
                Console.Error.WriteLine($"train: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    private static string? Validate(LearnerSettings s)
    {
        if (double.IsNaN(s.FilterRatio) || s.FilterRatio is < 0 or >= 1)
        {
            return $"--filter-ratio {s.FilterRatio} must be in [0, 1).";
        }

        if (s.BatchSize <= 0 || s.Steps <= 0 || s.EvalEvery <= 0)
        {
            return $"--batch-size ({s.BatchSize}), --steps ({s.Steps}) and --eval-every ({s.EvalEvery}) must be positive.";
        }

        if (!s.Independent && (s.Chunks <= 0 || s.BatchSize % s.Chunks != 0))
        {
            return $"--chunks {s.Chunks} must be positive and divide --batch-size {s.BatchSize}.";
        }

        if (s.AsShards < 0 || (s.AsShards > 0 && s.WebDataset.Length > 0))
        {
            return $"--as-shards {s.AsShards} must be ≥ 0 and applies to the built-in pool only (not with --data).";
        }

        if (s.ScoreResolution is not (7 or 14 or 28))
        {
            return $"--score-resolution {s.ScoreResolution} must be 7, 14 or 28.";
        }

        return !double.IsFinite(s.Gain) || s.Gain < 0 ? $"--gain {s.Gain} must be finite and ≥ 0." : null;
    }
}
