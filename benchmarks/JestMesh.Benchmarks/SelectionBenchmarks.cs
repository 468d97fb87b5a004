using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using JestMesh.Curation;

namespace JestMesh.Benchmarks;

/// <summary>Short runs so the whole suite fits in ~15 minutes on 2 shared cores; medians and allocations are what we report.</summary>
public sealed class ShortConfig : ManualConfig
{
    public ShortConfig()
    {
        AddJob(Job.Default.WithLaunchCount(1).WithWarmupCount(2).WithIterationCount(7).WithId("Short"));
        AddColumn(StatisticColumn.Median);
        AddDiagnoser(BenchmarkDotNet.Diagnosers.MemoryDiagnoser.Default);
    }
}

/// <summary>The JEST sampler with sigmoid learnability scores built on the fly from both models' embeddings (d = 64, 16 chunks).</summary>
[Config(typeof(ShortConfig))]
[MemoryDiagnoser]
public class JointSelectionBenchmark
{
    private ContrastiveEmbeddings _learner = null!;
    private ContrastiveEmbeddings _reference = null!;
    private int _b;

    [Params(1024, 4096, 16384)]
    public int N { get; set; }

    [Params(0.5, 0.75, 0.8, 0.9)]
    public double F { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (_learner, _reference) = SyntheticSuperBatch.Create(N, 64, seed: 1);
        _b = SyntheticSuperBatch.BatchSize(N, F, 16);
    }

    [Benchmark]
    public SelectionResult Jest()
    {
        var source = ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, _learner, _reference);
        return JointSampler.Select(source, new SamplerOptions { BatchSize = _b, Chunks = 16 }, new Random(7));
    }
}

/// <summary>The literal Alg. 1 port (full N×N matrices, re-summed each chunk) on the same inputs.</summary>
[Config(typeof(ShortConfig))]
[MemoryDiagnoser]
public class LiteralAlgorithm1Benchmark
{
    private ContrastiveEmbeddings _learner = null!;
    private ContrastiveEmbeddings _reference = null!;
    private int _b;

    [Params(1024, 4096)]
    public int N { get; set; }

    [Params(0.5, 0.75, 0.8, 0.9)]
    public double F { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (_learner, _reference) = SyntheticSuperBatch.Create(N, 64, seed: 1);
        _b = SyntheticSuperBatch.BatchSize(N, F, 16);
    }

    [Benchmark]
    public int[] Algorithm1() => LiteralAlgorithm1.JointlySampleBatch(_learner, _reference, 16, _b, 100, new Random(7));
}

/// <summary>Softmax (InfoNCE) vs sigmoid learnability at the size: N = 2,048, b = 512, 16 chunks, d = 64; the pre-rewrite softmax source rides along for before/after.</summary>
[Config(typeof(ShortConfig))]
[MemoryDiagnoser]
public class SoftmaxVsSigmoidBenchmark
{
    private ContrastiveEmbeddings _learner = null!;
    private ContrastiveEmbeddings _reference = null!;

    [Params(2048)]
    public int N { get; set; }

    [Params(512)]
    public int B { get; set; }

    [GlobalSetup]
    public void Setup() => (_learner, _reference) = SyntheticSuperBatch.Create(N, 64, seed: 1);

    [Benchmark(Baseline = true)]
    public SelectionResult Sigmoid() => Select(ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, _learner, _reference));

    [Benchmark]
    public SelectionResult Softmax() => Select(ScoreSources.SoftmaxContrastive(SelectionPolicy.Learnability, _learner, _reference));

    [Benchmark]
    public SelectionResult SoftmaxBeforeRewrite() => Select(new Baseline.BaselineSoftmaxSource(SelectionPolicy.Learnability, [_learner, _reference], [1.0, -1.0]));

    private SelectionResult Select(IScoreSource source) => JointSampler.Select(source, new SamplerOptions { BatchSize = B, Chunks = 16 }, new Random(7));
}
