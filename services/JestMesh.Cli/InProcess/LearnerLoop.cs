using System.Diagnostics;
using JestMesh.Curation;
using JestMesh.Data;
using JestMesh.Models;
using static TorchSharp.torch;

namespace JestMesh.Cli.InProcess;

/// <summary>Settings of one in-process learner run.</summary>
internal sealed record LearnerSettings
{
    public required SelectionPolicy Policy { get; init; }

    public bool Independent { get; init; }

    public double FilterRatio { get; init; } = 0.8;

    public int Chunks { get; init; } = 16;

    public int BatchSize { get; init; } = 128;

    public int Steps { get; init; } = 1500;

    public int Seed { get; init; }

    public double Gain { get; init; } = 1;

    public bool Greedy { get; init; }

    public int EvalEvery { get; init; } = 100;

    /// <summary>Record the selected example ids of the first this-many steps in metrics.json ("batches").</summary>
    public int RecordBatches { get; init; }

    public double LearningRate { get; init; } = 1e-3;

    public required DataOptions Data { get; init; }

    public required string Reference { get; init; }

    public required string Out { get; init; }

    /// <summary>N = b / (1 − f), the candidates scored per step.</summary>
    public int SuperBatch => (int)Math.Round(BatchSize / (1 - FilterRatio));

    public string Name => Policy switch
    {
        SelectionPolicy.Uniform => "uniform",
        SelectionPolicy.Learnability => Independent ? "learnability-independent" : "jest",
        SelectionPolicy.EasyReference => Independent ? "easy-reference-independent" : "easy-reference",
        SelectionPolicy.HardLearner => Independent ? "hard-learner-independent" : "hard-learner",
        _ => Policy.ToString(),
    };
}

/// <summary>Mean of one quantity over the steps since the previous evaluation.</summary>
internal sealed record WindowPoint(int Step, double Value);

/// <summary>metrics.json of a learner run.</summary>
internal sealed record LearnerMetrics
{
    public required string Run { get; init; }

    public required string Policy { get; init; }

    public required bool Independent { get; init; }

    public required double FilterRatio { get; init; }

    public required int SuperBatch { get; init; }

    public required int BatchSize { get; init; }

    public required int Chunks { get; init; }

    public required double Gain { get; init; }

    public required bool Greedy { get; init; }

    public required int Steps { get; init; }

    public required int Seed { get; init; }

    public required int DataSeed { get; init; }

    public required double SwappedShareOfPool { get; init; }

    public required string DataFingerprint { get; init; }

    public required string Reference { get; init; }

    public required int Threads { get; init; }

    public List<EvalPoint> Eval { get; } = [];

    /// <summary>Wall time of every step (data gather, learner scoring, selection, optimiser step); evaluation and the reference's first pass over an example excluded.</summary>
    public List<double> StepWallMs { get; } = [];

    public List<double> LearnerScoringMs { get; } = [];

    public List<double> SelectionMs { get; } = [];

    public List<double> TrainMs { get; } = [];

    /// <summary>Share of swapped (noisy) pairs among the b selected examples, per step.</summary>
    public List<double> SwappedShare { get; } = [];

    public List<WindowPoint> SwappedShareOverTime { get; } = [];

    public List<float> Loss { get; } = [];

    /// <summary>Selected example ids of the first RecordBatches steps, in selection order.</summary>
    public List<long[]> Batches { get; } = [];

    public double MeanStepMs { get; set; }

    public double MeanSwappedShare { get; set; }

    public double[] MeanChunkEntropy { get; set; } = [];

    public double ReferenceCacheSeconds { get; set; }

    public double WallSeconds { get; set; }
}

/// <summary>The learner loop in one process: super-batch → learner and reference scores → joint selection → one step.</summary>
internal static class LearnerLoop
{
    /// <summary>The Scoring service's default Scoring:BatchSize (examples per reference forward pass).</summary>
    private const int ReferenceBatchSize = 512;

    public static LearnerMetrics Run(LearnerSettings s)
    {
        var clock = Stopwatch.StartNew();
        var needsReference = s.Policy is SelectionPolicy.Learnability or SelectionPolicy.EasyReference;
        var needsLearner = s.Policy is SelectionPolicy.Learnability or SelectionPolicy.HardLearner;
        var meta = ModelCheckpoint.ReadMetadata(s.Reference);
        var data = PairDataset.Build(s.Data);
        if (meta.DataFingerprint != data.Fingerprint)
        {
            throw new InvalidOperationException(
                $"the reference in {s.Reference} was trained on data (data-seed={meta.DataSeed}, swapped-share={meta.SwappedShare}, " +
                $"curated-size={meta.CuratedSize}, duplicate-share={meta.DuplicateShare}; fingerprint {meta.DataFingerprint}) but this run uses " +
                $"({Commands.DataSettings.Describe(s.Data)}; fingerprint {data.Fingerprint}): pass the same data options, or train a reference for these.");
        }

        var n = s.SuperBatch;
        if (n > data.Pool.Count)
        {
            throw new ArgumentException($"super-batch N = {n} (batch {s.BatchSize}, filter ratio {s.FilterRatio}) exceeds the pool of {data.Pool.Count}.");
        }

        var metrics = new LearnerMetrics
        {
            Run = s.Name, Policy = s.Policy.ToString(), Independent = s.Independent, FilterRatio = s.FilterRatio, SuperBatch = n,
            BatchSize = s.BatchSize, Chunks = s.Independent ? 1 : s.Chunks, Gain = s.Gain, Greedy = s.Greedy, Steps = s.Steps,
            Seed = s.Seed, DataSeed = s.Data.Seed, SwappedShareOfPool = s.Data.SwappedShare, DataFingerprint = data.Fingerprint,
            Reference = Path.GetFullPath(s.Reference), Threads = get_num_threads(),
        };

        using var pool = new PairTensors(data.Pool, data.Train);
        var swapped = data.Pool.Select(p => p.Kind == PairKind.Swapped).ToArray();
        // The reference is frozen: its embeddings are cached per example (§A.5) and computed the first
        // time an example is in a super-batch, the missing ones together in passes of at most
        // Scoring:BatchSize, exactly as the Scoring service does, so both produce the same bits.
        var dimension = 0;
        float[] refImage = [], refText = [];
        bool[] refCached = [];
        float refAlpha = 0, refBeta = 0;
        SiglipModel? reference = null;
        if (needsReference)
        {
            (reference, _) = ModelCheckpoint.Load(s.Reference, CPU);
            dimension = reference.Config.Dim;
            refImage = new float[data.Pool.Count * dimension];
            refText = new float[data.Pool.Count * dimension];
            refCached = new bool[data.Pool.Count];
            refAlpha = reference.Alpha;
            refBeta = reference.Beta;
        }

        using var referenceModel = reference;
        manual_seed(s.Seed);
        using var learner = SiglipModel.Create(new ModelConfig(), CPU);
        using var trainer = new ModelTrainer(learner, new TrainingOptions
        {
            TotalSteps = s.Steps,
            WarmupSteps = Math.Min(100, Math.Max(1, s.Steps / 10)),
            LearningRate = s.LearningRate,
        });
        using var evaluator = new Evaluator(data);
        var sampler = new SamplerOptions { BatchSize = s.BatchSize, Chunks = s.Independent ? 1 : s.Chunks, Gain = s.Gain, Greedy = s.Greedy };
        // The service conventions, so that a pipeline run with the same settings selects the same
        // batches: Ingest's super-batch order for this seed, and per-batch sampler seeds.
        using var plan = SuperBatchPlan.Positions(data.Pool.Count, n, s.Seed).GetEnumerator();
        var dim = learner.Config.Dim;
        var superIdx = new long[n];
        var entropySum = new double[sampler.Chunks];
        var entropyCount = 0;
        var windowStart = 0;

        Progress.Run($"{s.Name} (b={s.BatchSize}, N={n})", s.Steps, report =>
        {
            for (var step = 1; step <= s.Steps; step++)
            {
                var stepClock = Stopwatch.StartNew();
                plan.MoveNext();
                for (var i = 0; i < n; i++)
                {
                    superIdx[i] = plan.Current[i];
                }

                double scoringMs = 0;
                double cacheMs = 0;
                SelectionResult selection;
                Tensor batchImages, batchTokens;
                using var scope = NewDisposeScope();
                var (images, tokens, _) = pool.Gather(TensorConvert.Int64(superIdx));
                ContrastiveEmbeddings? learnerView = null, referenceView = null;
                if (needsLearner)
                {
                    var scoreClock = Stopwatch.StartNew();
                    var (img, txt) = learner.EmbedTensors(images, tokens, n);
                    learnerView = new ContrastiveEmbeddings(TensorConvert.ToArray(img), TensorConvert.ToArray(txt), n, dim, learner.Alpha, learner.Beta);
                    scoringMs = scoreClock.Elapsed.TotalMilliseconds;
                }

                if (needsReference)
                {
                    var cacheClock = Stopwatch.StartNew();
                    var misses = superIdx.Where(p => !refCached[p]).ToArray();
                    if (misses.Length > 0)
                    {
                        var (missImages, missTokens, _) = pool.Gather(TensorConvert.Int64(misses));
                        var (img, txt) = referenceModel!.EmbedTensors(missImages, missTokens, ReferenceBatchSize);
                        var missImage = TensorConvert.ToArray(img);
                        var missText = TensorConvert.ToArray(txt);
                        for (var k = 0; k < misses.Length; k++)
                        {
                            missImage.AsSpan(k * dimension, dimension).CopyTo(refImage.AsSpan((int)misses[k] * dimension));
                            missText.AsSpan(k * dimension, dimension).CopyTo(refText.AsSpan((int)misses[k] * dimension));
                            refCached[misses[k]] = true;
                        }
                    }

                    cacheMs = cacheClock.Elapsed.TotalMilliseconds;
                    metrics.ReferenceCacheSeconds += cacheMs / 1000;
                    var ri = new float[n * dimension];
                    var rt = new float[n * dimension];
                    for (var i = 0; i < n; i++)
                    {
                        refImage.AsSpan((int)superIdx[i] * dimension, dimension).CopyTo(ri.AsSpan(i * dimension));
                        refText.AsSpan((int)superIdx[i] * dimension, dimension).CopyTo(rt.AsSpan(i * dimension));
                    }

                    referenceView = new ContrastiveEmbeddings(ri, rt, n, dimension, refAlpha, refBeta);
                }

                var selectClock = Stopwatch.StartNew();
                var source = s.Policy == SelectionPolicy.Uniform
                    ? ScoreSources.Uniform(n)
                    : ScoreSources.SigmoidContrastive(s.Policy, learnerView, referenceView);
                selection = JointSampler.Select(source, sampler, new Random(SamplerSeeds.ForBatch(unchecked((ulong)s.Seed), step)));
                var selectionMs = selectClock.Elapsed.TotalMilliseconds;
                if (s.Policy != SelectionPolicy.Uniform)
                {
                    for (var c = 0; c < entropySum.Length && c < selection.ChunkEntropy.Length; c++)
                    {
                        entropySum[c] += selection.ChunkEntropy[c];
                    }

                    entropyCount++;
                }

                var picked = selection.Indices.Select(i => (long)i).ToArray();
                var local = TensorConvert.Int64(picked);
                batchImages = images.index_select(0, local);
                batchTokens = tokens.index_select(0, local);
                var trainClock = Stopwatch.StartNew();
                var loss = trainer.TrainStep(() => learner.Loss(batchImages, batchTokens));
                var trainMs = trainClock.Elapsed.TotalMilliseconds;
                scope.Dispose();

                // The reference pass is the Scoring service's work (once per example), not the learner's step.
                metrics.StepWallMs.Add(stepClock.Elapsed.TotalMilliseconds - cacheMs);
                metrics.LearnerScoringMs.Add(scoringMs);
                metrics.SelectionMs.Add(selectionMs);
                metrics.TrainMs.Add(trainMs);
                metrics.Loss.Add(loss);
                if (step <= s.RecordBatches)
                {
                    metrics.Batches.Add([.. selection.Indices.Select(i => data.Pool[(int)superIdx[i]].Id)]);
                }

                var noisy = selection.Indices.Count(i => swapped[superIdx[i]]);
                metrics.SwappedShare.Add((double)noisy / selection.Indices.Length);

                if (step % s.EvalEvery == 0 || step == s.Steps)
                {
                    var e = evaluator.Evaluate(learner);
                    metrics.Eval.Add(EvalPoint.At(step, e));
                    var window = metrics.SwappedShare.Skip(windowStart).Average();
                    metrics.SwappedShareOverTime.Add(new WindowPoint(step, window));
                    windowStart = step;
                    report(step, $"zero-shot {e.ZeroShotAccuracy:P1}, R@1 {e.RecallAt1:P1}, swapped {window:P0}, {metrics.StepWallMs.Skip(step - s.EvalEvery).Average():F0} ms/step");
                    JsonFiles.Write(Path.Combine(s.Out, "metrics.json"), Finish(metrics, entropySum, entropyCount, clock));
                }
                else
                {
                    report(step, null);
                }
            }

            return 0;
        });

        return Finish(metrics, entropySum, entropyCount, clock);
    }

    private static LearnerMetrics Finish(LearnerMetrics m, double[] entropySum, int entropyCount, Stopwatch clock)
    {
        m.MeanStepMs = m.StepWallMs.Average();
        m.MeanSwappedShare = m.SwappedShare.Average();
        m.MeanChunkEntropy = entropyCount == 0 ? [] : entropySum.Select(e => e / entropyCount).ToArray();
        m.WallSeconds = clock.Elapsed.TotalSeconds;
        return m;
    }
}
