using System.Diagnostics;
using BenchmarkDotNet.Running;
using JestMesh.Benchmarks;
using JestMesh.Curation;

if (args.Length > 0 && args[0] == "softmax")
{
    // Sigmoid vs softmax (and the frozen pre-rewrite softmax with "old"), interleaved: softmax N b reps [old] [--json FILE]
    var json = Array.IndexOf(args, "--json") is var at and > 0 && at + 1 < args.Length ? args[at + 1] : null;
    var positional = args.Where((a, i) => a != "--json" && (i == 0 || args[i - 1] != "--json")).ToArray();
    SoftmaxCompare.Run(
        positional.Length > 1 ? int.Parse(positional[1]) : 2048,
        positional.Length > 2 ? int.Parse(positional[2]) : 512,
        positional.Length > 3 ? int.Parse(positional[3]) : 9,
        positional.Length > 4 && positional[4] == "old",
        json);
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
