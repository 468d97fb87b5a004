using System.Diagnostics;
using JestMesh.Curation;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using JestMesh.Models;
using JestMesh.Learning;
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

    /// <summary>Image side the learner scores candidates at (28 exact; 14 or 7 cheap, Flexi-JEST).</summary>
    public int ScoreResolution { get; init; } = ImageSet.Side;

    /// <summary>With cheap scoring: every this-many steps also score the super-batch exactly (outside the step's timing) and compare the rankings; 0 = never.</summary>
    public int RankCheckEvery { get; init; }

    public required DataOptions Data { get; init; }

    public required string Reference { get; init; }

    public required string Out { get; init; }

    /// <summary>WebDataset shard directory to train on instead of the built-in pool ("" = built-in).</summary>
    public string WebDataset { get; init; } = "";

    /// <summary>Stream the built-in pool as if written as shards of this size (0 = the whole-pool order).</summary>
    public int AsShards { get; init; }

    /// <summary>N = b / (1 − f), the candidates scored per step.</summary>
    public int SuperBatch => SuperBatchSizing.SuperBatchSize(BatchSize, FilterRatio);

    public string Name => Policies.RunName(Policy, Independent);
}

/// <summary>Mean of one quantity over the steps since the previous evaluation.</summary>
internal sealed record WindowPoint(int Step, double Value);

/// <summary>Cheap vs exact learner scoring of the same super-batch: rank agreement of the per-example scores S_ii.</summary>
/// <param name="Step">The step whose super-batch was compared (before its training step).</param>
/// <param name="SpearmanLearnability">Spearman between cheap and exact learnability S_ii = L_learner(i,i) − L_reference(i,i).</param>
/// <param name="SpearmanLearnerLoss">Spearman between cheap and exact learner pair losses L_learner(i,i) alone.</param>
/// <param name="TopBOverlap">Share of the b most learnable by exact scores that cheap scores also put in their top b.</param>
internal sealed record RankCheck(int Step, double SpearmanLearnability, double SpearmanLearnerLoss, double TopBOverlap);

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

    /// <summary>The WebDataset directory trained on, or "" for the built-in pool.</summary>
    public string WebDataset { get; init; } = "";

    /// <summary>Samples of the WebDataset source that were skipped (each named on stderr).</summary>
    public int SkippedSamples { get; set; }

    public int ScoreResolution { get; init; } = ImageSet.Side;

    public List<RankCheck> RankChecks { get; } = [];

    /// <summary>Wall time of every evaluation, ms (not part of any step's wall time).</summary>
    public List<double> EvalMs { get; } = [];

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

/// <summary>
/// The learner loop in one process, wired from the same learning-core objects the services use:
/// the super-batch plan Ingest streams, the <see cref="ReferenceScorer"/> Scoring runs, the
/// <see cref="CurationStep"/> Selection runs and the <see cref="LearnerSession"/> the Trainer runs.
/// </summary>
internal static class LearnerLoop
{
    /// <summary>The Scoring service's default Scoring:BatchSize (examples per reference forward pass).</summary>
    private const int ReferenceBatchSize = 512;

    public static LearnerMetrics Run(LearnerSettings s)
    {
        var clock = Stopwatch.StartNew();
        var curation = new CurationSettings
        {
            Policy = s.Policy,
            FilterRatio = s.FilterRatio,
            Chunks = s.Independent ? 1 : s.Chunks,
            Gain = s.Gain,
            Greedy = s.Greedy,
            Seed = unchecked((ulong)s.Seed),
        };
        curation.Validate("train");
        // A reference bundle exported from PyTorch carries no data fingerprint: the user vouches for it.
        var meta = ReferenceBundle.IsBundle(s.Reference) ? null : ModelCheckpoint.ReadMetadata(s.Reference);
        // The web-like pool duplicates the pairs this run's reference finds easiest.
        var data = PairDataset.Build(s.Data, s.Data.Pool == PoolKinds.Weblike ? ReferencePairLosses.Of(s.Reference) : null);
        // With --data the pool is the user's shards: the reference is theirs to choose (the built-in test set still evaluates).
        var shards = s.WebDataset.Length > 0 ? new WdsSource(s.WebDataset, skip => Console.Error.WriteLine($"train: {skip}")) : null;
        if (shards is null && meta is not null && meta.DataFingerprint != data.Fingerprint)
        {
            throw new InvalidOperationException(
                $"the reference in {s.Reference} was trained on data (data-seed={meta.DataSeed}, swapped-share={meta.SwappedShare}, " +
                $"curated-size={meta.CuratedSize}, duplicate-share={meta.DuplicateShare}; fingerprint {meta.DataFingerprint}) but this run uses " +
                $"({Commands.DataSettings.Describe(s.Data)}; fingerprint {data.Fingerprint}): pass the same data options, or train a reference for these.");
        }

        var n = s.SuperBatch;
        if (shards is null && n > data.Pool.Count)
        {
            throw new ArgumentException($"super-batch N = {n} (batch {s.BatchSize}, filter ratio {s.FilterRatio}) exceeds the pool of {data.Pool.Count}.");
        }
        curation.CheckFits(n);

        var metrics = new LearnerMetrics
        {
            Run = s.Name, Policy = Policies.Name(s.Policy), Independent = s.Independent, FilterRatio = s.FilterRatio, SuperBatch = n,
            BatchSize = s.BatchSize, Chunks = curation.Chunks, Gain = s.Gain, Greedy = s.Greedy, Steps = s.Steps,
            Seed = s.Seed, DataSeed = s.Data.Seed, SwappedShareOfPool = s.Data.SwappedShare, DataFingerprint = shards?.Fingerprint ?? data.Fingerprint,
            Reference = Path.GetFullPath(s.Reference), Threads = get_num_threads(), WebDataset = shards?.Root ?? "", ScoreResolution = s.ScoreResolution,
        };

        // The reference is frozen: its embeddings are cached per example (§A.5), the whole pool fits.
        using var reference = curation.NeedsReference
            ? ReferenceScorer.LoadAsync(s.Reference, "cpu", ReferenceBatchSize, shards is null ? data.Pool.Count : CacheCapacityForShards).GetAwaiter().GetResult()
            : null;
        using var evaluator = new Evaluator(data);
        using var learner = new LearnerSession(new LearnerOptions
        {
            Steps = s.Steps,
            Seed = unchecked((ulong)s.Seed),
            LearningRate = s.LearningRate,
            EvalEvery = s.EvalEvery,
            ScoreResolution = s.ScoreResolution,
        }, evaluator);
        var rankChecks = curation.NeedsLearner && curation.NeedsReference && s.ScoreResolution != ImageSet.Side && s.RankCheckEvery > 0;
        // Ingest's super-batch order for this seed, so a pipeline run with the same settings sees the same data.
        using var plan = Candidates(s, data, shards, n).GetEnumerator();
        var entropySum = new double[curation.Chunks];
        var entropyCount = 0;
        var windowStart = 0;

        Progress.Run($"{s.Name} (b={s.BatchSize}, N={n})", s.Steps, report =>
        {
            for (var step = 1; step <= s.Steps; step++)
            {
                var stepClock = Stopwatch.StartNew();
                plan.MoveNext();
                var (candidates, swapped) = plan.Current;

                double scoringMs = 0;
                double cacheMs = 0;
                LearnerView? learnerView = null;
                if (curation.NeedsLearner)
                {
                    var scoreClock = Stopwatch.StartNew();
                    learnerView = new LearnerView(learner.Score(candidates));
                    scoringMs = scoreClock.Elapsed.TotalMilliseconds;
                }

                ReferenceScores? referenceScores = null;
                if (reference is not null)
                {
                    var cacheClock = Stopwatch.StartNew();
                    referenceScores = reference.ScoreAsync(candidates.Ids, misses => candidates.Rows(misses)).GetAwaiter().GetResult();
                    cacheMs = cacheClock.Elapsed.TotalMilliseconds;
                    metrics.ReferenceCacheSeconds += cacheMs / 1000;
                }

                double checkMs = 0;
                if (rankChecks && (step - 1) % s.RankCheckEvery == 0)
                {
                    var checkClock = Stopwatch.StartNew();
                    metrics.RankChecks.Add(CompareScoring(learner, candidates, learnerView!.Embeddings!, referenceScores!.ToEmbeddings(), step, curation.BatchSizeFor(n)));
                    checkMs = checkClock.Elapsed.TotalMilliseconds;
                }

                var selectClock = Stopwatch.StartNew();
                var outcome = CurationStep.Select(curation, n, referenceScores?.ToEmbeddings(), learnerView, step);
                var selectionMs = selectClock.Elapsed.TotalMilliseconds;
                if (s.Policy != SelectionPolicy.Uniform)
                {
                    for (var c = 0; c < entropySum.Length && c < outcome.Stats.ChunkEntropy.Length; c++)
                    {
                        entropySum[c] += outcome.Stats.ChunkEntropy[c];
                    }

                    entropyCount++;
                }

                var batch = candidates.Rows(outcome.Selected);
                var trainClock = Stopwatch.StartNew();
                var loss = learner.Train(batch);
                var trainMs = trainClock.Elapsed.TotalMilliseconds;

                // The reference pass is the Scoring service's work (once per example), not the learner's step.
                // So is the cheap-vs-exact check, which a run without it would not do.
                metrics.StepWallMs.Add(stepClock.Elapsed.TotalMilliseconds - cacheMs - checkMs);
                metrics.LearnerScoringMs.Add(scoringMs);
                metrics.SelectionMs.Add(selectionMs);
                metrics.TrainMs.Add(trainMs);
                metrics.Loss.Add(loss);
                if (step <= s.RecordBatches)
                {
                    metrics.Batches.Add(batch.Ids);
                }

                var noisy = outcome.Selected.Count(i => swapped[i]);
                metrics.SwappedShare.Add((double)noisy / outcome.Selected.Length);

                if (learner.EvaluationDue)
                {
                    var evalClock = Stopwatch.StartNew();
                    var e = learner.Evaluate();
                    metrics.EvalMs.Add(evalClock.Elapsed.TotalMilliseconds);
                    metrics.Eval.Add(e);
                    var window = metrics.SwappedShare.Skip(windowStart).Average();
                    metrics.SwappedShareOverTime.Add(new WindowPoint(step, window));
                    windowStart = step;
                    report(step, $"zero-shot {e.ZeroShotAcc:P1}, R@1 {e.RAt1:P1}, swapped {window:P0}, {metrics.StepWallMs.Skip(step - s.EvalEvery).Average():F0} ms/step");
                    JsonFiles.Write(Path.Combine(s.Out, "metrics.json"), Finish(metrics, entropySum, entropyCount, clock));
                }
                else
                {
                    report(step, null);
                }
            }

            return 0;
        });

        metrics.SkippedSamples = shards?.Skipped.Count ?? 0;
        return Finish(metrics, entropySum, entropyCount, clock);
    }

    /// <summary>Reference cache rows when the pool size is not known up front (a shard source): 2^20 examples.</summary>
    private const int CacheCapacityForShards = 1 << 20;

    /// <summary>
    /// The candidates of consecutive steps and which of them are swapped: the built-in pool in Ingest's
    /// order (<see cref="SuperBatchPlan"/>, or <see cref="ShardOrder.PoolPositions"/> with --as-shards), or
    /// the WebDataset source in its shard order (as Ingest streams it with Ingest:WebDatasetDirectory).
    /// </summary>
    private static IEnumerable<(ExampleBatch Candidates, bool[] Swapped)> Candidates(LearnerSettings s, PairDataset data, WdsSource? shards, int n)
    {
        if (shards is not null)
        {
            return shards.SuperBatches(n, s.Seed, int.MaxValue, BuiltInPairs.Decode)
                .Select(pairs => (ExampleBatch.FromPairs(pairs), pairs.Select(p => p.Kind == PairKind.Swapped).ToArray()));
        }
        var positions = s.AsShards > 0
            ? ShardOrder.PoolPositions(data.Pool.Count, s.AsShards, n, s.Seed)
            : SuperBatchPlan.Positions(data.Pool.Count, n, s.Seed);
        return positions.Select(p => (ExampleBatch.FromPool(data, p), p.Select(i => data.Pool[i].Kind == PairKind.Swapped).ToArray()));
    }

    /// <summary>Scores <paramref name="candidates"/> exactly (28×28) and compares the per-example scores with the cheap view the step used.</summary>
    private static RankCheck CompareScoring(LearnerSession learner, ExampleBatch candidates, ContrastiveEmbeddings cheap, ContrastiveEmbeddings reference, int step, int b)
    {
        var exact = learner.Score(candidates, ImageSet.Side);
        var learnabilityCheap = Diagonal(ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, cheap, reference));
        var learnabilityExact = Diagonal(ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, exact, reference));
        var lossCheap = Diagonal(ScoreSources.SigmoidContrastive(SelectionPolicy.HardLearner, cheap, null));
        var lossExact = Diagonal(ScoreSources.SigmoidContrastive(SelectionPolicy.HardLearner, exact, null));
        return new RankCheck(step, RankCorrelation.Spearman(learnabilityExact, learnabilityCheap), RankCorrelation.Spearman(lossExact, lossCheap),
            RankCorrelation.TopKOverlap(learnabilityExact, learnabilityCheap, b));
    }

    private static double[] Diagonal(IScoreSource source)
    {
        var diagonal = new double[source.Count];
        source.Start(1).Initialize(diagonal);
        return diagonal;
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
