using System.CommandLine;
using System.Diagnostics;
using JestMesh.Cli.InProcess;
using JestMesh.Curation;
using JestMesh.Data;
using JestMesh.Models;
using static TorchSharp.torch;

namespace JestMesh.Cli.Commands;

/// <summary>
/// <c>jestmesh bench models</c>: training-step and scoring throughput of the SigLIP model, the same measurement as
/// benchmarks/pytorch/bench_models.py so both can be compared side by side.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads (set the same for PyTorch).", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch-size") { Description = "Examples per training step.", DefaultValueFactory = _ => 128 };
        var candidates = new Option<int>("--candidates") { Description = "Examples per no-grad scoring pass (the super-batch).", DefaultValueFactory = _ => 640 };
        var iterations = new Option<int>("--iterations") { Description = "Timed repetitions of each measurement.", DefaultValueFactory = _ => 50 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed repetitions first.", DefaultValueFactory = _ => 10 };
        var repeats = new Option<int>("--repeats") { Description = "Rounds; the best round is reported (shared cores are noisy).", DefaultValueFactory = _ => 3 };
        var chunk = new Option<int>("--score-chunk") { Description = "Rows per forward pass when scoring (0 = the whole super-batch at once).", DefaultValueFactory = _ => 0 };
        var json = new Option<string>("--json") { Description = "Write the figures to this JSON file." };

        var models = new Command("models", "Training-step and scoring throughput (examples/s) of the SigLIP model in TorchSharp.");
        foreach (var o in new Option[] { threads, batch, candidates, iterations, warmup, repeats, chunk, json })
        {
            models.Options.Add(o);
        }

        models.SetAction(parse =>
        {
            var t = parse.GetValue(threads);
            if (t <= 0)
            {
                Console.Error.WriteLine($"--threads {t} must be positive (benchmarks pin the thread count).");
                return 2;
            }

            Threads.Apply(t);
            var result = Run(parse.GetValue(batch), parse.GetValue(candidates), parse.GetValue(iterations), parse.GetValue(warmup), parse.GetValue(repeats), parse.GetValue(chunk));
            Console.WriteLine($"torchsharp ({get_num_threads()} threads): train {result.TrainExamplesPerSecond:F0} examples/s " +
                $"({result.TrainStepMs:F2} ms/step of {result.BatchSize}), scoring {result.ScoreExamplesPerSecond:F0} examples/s " +
                $"({result.ScoreMs:F2} ms per {result.Candidates}); JEST step {result.JestStepMs:F1} ms = {result.JestOverUniform:F2}× a uniform step (interleaved)");
            var path = parse.GetValue(json);
            if (path is not null)
            {
                JsonFiles.Write(path, result);
            }

            return 0;
        });

        var bench = new Command("bench", "Benchmarks that write JSON.");
        bench.Subcommands.Add(models);
        bench.Subcommands.Add(BenchSelectCommand.Create());
        return bench;
    }

    private static BenchResult Run(int batchSize, int candidates, int iterations, int warmup, int repeats, int scoreChunk)
    {
        // Real pairs so the work is what training does; throughput does not depend on the values.
        var data = PairDataset.Build(new DataOptions());
        manual_seed(0);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        using var pool = new PairTensors(data.Pool.Take(Math.Max(batchSize, candidates)).ToArray(), data.Train);
        using var trainer = new ModelTrainer(model, new TrainingOptions { TotalSteps = 1_000_000, WarmupSteps = 1 });
        using var scope = NewDisposeScope();
        var trainImages = pool.Images.narrow(0, 0, batchSize);
        var trainTokens = pool.Tokens.narrow(0, 0, batchSize);
        var scoreImages = pool.Images.narrow(0, 0, candidates);
        var scoreTokens = pool.Tokens.narrow(0, 0, candidates);

        double Time(Action action)
        {
            for (var i = 0; i < warmup; i++)
            {
                action();
            }

            var best = double.MaxValue;
            for (var r = 0; r < repeats; r++)
            {
                var clock = Stopwatch.StartNew();
                for (var i = 0; i < iterations; i++)
                {
                    action();
                }

                best = Math.Min(best, clock.Elapsed.TotalMilliseconds / iterations);
            }

            return best;
        }

        var trainMs = Time(() => trainer.TrainStep(() => model.Loss(trainImages, trainTokens)));
        var scoreMs = Time(() =>
        {
            using var inner = NewDisposeScope();
            var (img, txt) = model.EmbedTensors(scoreImages, scoreTokens, scoreChunk > 0 ? scoreChunk : candidates);
            _ = TensorConvert.ToArray(img);
            _ = TensorConvert.ToArray(txt);
        });

        // A whole JEST step as the in-process trainer runs it (reference embeddings cached, so only the learner scores),
        // measured in the same process as the plain step so the ratio is not skewed by load from other processes.
        var dim = model.Config.Dim;
        var refImage = new float[candidates * dim];
        var refText = new float[candidates * dim];
        using (var refScope = NewDisposeScope())
        {
            var (ri, rt) = model.EmbedTensors(scoreImages, scoreTokens, candidates);
            TensorConvert.CopyTo(ri, refImage);
            TensorConvert.CopyTo(rt, refText);
        }

        var reference = new ContrastiveEmbeddings(refImage, refText, candidates, dim, 10f, -10f);
        var sampler = new SamplerOptions { BatchSize = batchSize, Chunks = 16, Gain = 10 };
        var random = new Random(0);
        void JestStep()
        {
            using var inner = NewDisposeScope();
            var (img, txt) = model.EmbedTensors(scoreImages, scoreTokens, scoreChunk > 0 ? scoreChunk : candidates);
            var learner = new ContrastiveEmbeddings(TensorConvert.ToArray(img), TensorConvert.ToArray(txt), candidates, dim, model.Alpha, model.Beta);
            var picked = JointSampler.Select(ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, learner, reference), sampler, random);
            var local = TensorConvert.Int64(picked.Indices.Select(i => (long)i).ToArray());
            var bi = scoreImages.index_select(0, local);
            var bt = scoreTokens.index_select(0, local);
            trainer.TrainStep(() => model.Loss(bi, bt));
        }

        var jestMs = Time(JestStep);

        // The cost ratio, with plain and JEST steps alternating so a change in background load hits both alike.
        double plainTotal = 0, jestTotal = 0;
        for (var i = 0; i < iterations * repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            trainer.TrainStep(() => model.Loss(trainImages, trainTokens));
            plainTotal += clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            JestStep();
            jestTotal += clock.Elapsed.TotalMilliseconds;
        }


        return new BenchResult("torchsharp", "TorchSharp-cpu 0.107.0 (libtorch 2.10)", get_num_threads(), batchSize, candidates, iterations, repeats,
            trainMs, batchSize / trainMs * 1000, scoreMs, candidates / scoreMs * 1000, jestMs, jestTotal / plainTotal);
    }
}

/// <summary>One framework's throughput figures (same fields as the PyTorch script writes).</summary>
internal sealed record BenchResult(
    string Framework, string Version, int Threads, int BatchSize, int Candidates, int Iterations, int Repeats,
    double TrainStepMs, double TrainExamplesPerSecond, double ScoreMs, double ScoreExamplesPerSecond, double JestStepMs,
    [property: System.Text.Json.Serialization.JsonPropertyName("jest_over_uniform_interleaved")] double JestOverUniform);
