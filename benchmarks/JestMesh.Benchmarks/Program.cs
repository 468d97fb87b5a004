using System.Diagnostics;
using BenchmarkDotNet.Running;
using JestMesh.Benchmarks;
using JestMesh.Curation;

if (args.Length > 0 && args[0] == "softmax")
{
    // Sigmoid vs softmax (and the frozen pre-rewrite softmax with "old"), interleaved: softmax N b reps [old]
    SoftmaxCompare.Run(
        args.Length > 1 ? int.Parse(args[1]) : 2048,
        args.Length > 2 ? int.Parse(args[2]) : 512,
        args.Length > 3 ? int.Parse(args[3]) : 9,
        args.Length > 4 && args[4] == "old");
    return;
}

if (args.Length > 0 && args[0] == "quick")
{
    // A fast sanity timing outside BenchmarkDotNet: median of repeated selections.
    int n = args.Length > 1 ? int.Parse(args[1]) : 4096;
    int b = args.Length > 2 ? int.Parse(args[2]) : 1024;
    var (learner, reference) = SyntheticSuperBatch.Create(n, 64, 1);
    var times = new List<double>();
    var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
    for (int i = 0; i < 25; i++)
    {
        var policy = Environment.GetEnvironmentVariable("QUICK_POLICY") is { } p ? Enum.Parse<SelectionPolicy>(p) : SelectionPolicy.Learnability;
        int chunks = Environment.GetEnvironmentVariable("QUICK_CHUNKS") is { } c ? int.Parse(c) : 16;
        var source = ScoreSources.SigmoidContrastive(policy, learner, reference);
        var clock = Stopwatch.StartNew();
        var r = JointSampler.Select(source, new SamplerOptions { BatchSize = b, Chunks = chunks }, new Random(i));
        times.Add(clock.Elapsed.TotalMilliseconds);
        if (i == 0)
        {
            Console.WriteLine($"score {r.Score:F3} entropy[0] {r.ChunkEntropy[0]:F3} entropy[15] {r.ChunkEntropy[^1]:F3}");
        }
    }

    double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalMilliseconds / 25;
    times.Sort();
    Console.WriteLine($"N={n} b={b}: median {times[times.Count / 2]:F2} ms, min {times[0]:F2} ms, CPU time per selection {cpu:F1} ms");
    if (args.Length > 3)
    {
        var clock = Stopwatch.StartNew();
        LiteralAlgorithm1.JointlySampleBatch(learner, reference, 16, b, 100, new Random(1));
        Console.WriteLine($"literal Alg. 1: {clock.Elapsed.TotalMilliseconds:F0} ms");
    }

    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
