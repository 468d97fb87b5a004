using System.Diagnostics;
using JestMesh.Benchmarks.Baseline;
using JestMesh.Curation;

namespace JestMesh.Benchmarks;

/// <summary>
/// Interleaved timing of the sigmoid source, the softmax source computing everything, the softmax source given the reference's
/// first-pass losses (what Selection pays once Scoring ships them), Scoring's cost of those losses, and optionally the frozen
/// pre-rewrite softmax source, so machine load hits all of them alike.
/// </summary>
/// <remarks>Besides whole selections it times the phases of each state (Initialize, the chunk Adds, SelectedScore) through the public interface.</remarks>
public static class SoftmaxCompare
{
    private static readonly System.Text.Json.JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Runs <paramref name="reps"/> interleaved rounds and prints medians; with <paramref name="json"/>, writes them there too.</summary>
    public static void Run(int n, int b, int reps, bool baseline, string? json = null)
    {
        var loadBefore = LoadAverage();
        const int chunks = 16;
        var (learner, reference) = SyntheticSuperBatch.Create(n, 64, 1);
        var options = new SamplerOptions { BatchSize = b, Chunks = chunks };
        // What Scoring ships with the super-batch: computed once here, timed separately below (Scoring's cost per super-batch).
        var referenceLosses = InfoNceLosses.Compute(reference);
        var variants = new List<(string Name, Func<IScoreSource> Make)>
        {
            ("sigmoid", () => ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, learner, reference)),
            ("softmax", () => ScoreSources.SoftmaxContrastive(SelectionPolicy.Learnability, learner, reference)),
            ("softmax-shipped", () => ScoreSources.SoftmaxContrastive(SelectionPolicy.Learnability, learner, reference, referenceLosses)),
        };
        if (baseline)
        {
            variants.Add(("softmax-old", () => new BaselineSoftmaxSource(SelectionPolicy.Learnability, [learner, reference], [1.0, -1.0])));
        }

        var whole = variants.ToDictionary(v => v.Name, _ => new List<double>());
        var cpu = variants.ToDictionary(v => v.Name, _ => new List<double>());
        var process = Process.GetCurrentProcess();
        var phases = variants.ToDictionary(v => v.Name, _ => new List<(double Init, double Add, double Score, double InitCpu, double AddCpu, double ScoreCpu)>());
        var indices = new Dictionary<string, int[]>();
        var scores = new Dictionary<string, double>();
        int sameIndices = 0;
        int shippedSame = 0;
        var scoringWall = new List<double>();
        var scoringCpu = new List<double>();
        for (int rep = 0; rep < reps; rep++)
        {
            foreach (var (name, make) in variants)
            {
                process.Refresh();
                var cpuStart = process.TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                var result = JointSampler.Select(make(), options, new Random(rep));
                whole[name].Add(clock.Elapsed.TotalMilliseconds);
                process.Refresh();
                cpu[name].Add((process.TotalProcessorTime - cpuStart).TotalMilliseconds);
                if (name == "softmax")
                {
                    indices[name] = result.Indices.ToArray();
                    scores[name] = result.Score;
                }
                else if (name == "softmax-old" && result.Indices.SequenceEqual(indices["softmax"]))
                {
                    sameIndices++;
                }
                else if (name == "softmax-shipped" && result.Indices.SequenceEqual(indices["softmax"]) && result.Score == scores["softmax"])
                {
                    shippedSame++;
                }

                if (rep == 0)
                {
                    Console.WriteLine($"{name,-12} score {result.Score:F6} first indices {string.Join(",", result.Indices.Take(6))}");
                }

                phases[name].Add(Phases(make(), n, b / chunks, rep));
            }

            // Scoring's side of the move: the reference's losses over the super-batch, once per super-batch for every job.
            process.Refresh();
            var scoringCpuStart = process.TotalProcessorTime;
            var scoringClock = Stopwatch.StartNew();
            _ = InfoNceLosses.Compute(reference);
            scoringWall.Add(scoringClock.Elapsed.TotalMilliseconds);
            process.Refresh();
            scoringCpu.Add((process.TotalProcessorTime - scoringCpuStart).TotalMilliseconds);
        }

        Console.WriteLine($"softmax-shipped selects the same indices with the same score as softmax in {shippedSame} of {reps} seeds");

        if (baseline)
        {
            Console.WriteLine($"softmax selects the same indices as softmax-old in {sameIndices} of {reps} seeds");
        }

        var figures = new Dictionary<string, object>
        {
            ["n"] = n,
            ["b"] = b,
            ["chunks"] = chunks,
            ["reps"] = reps,
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            ["load_average_before"] = loadBefore,
            ["load_average_after"] = LoadAverage(),
        };
        foreach (var (name, _) in variants)
        {
            var p = phases[name];
            figures[name] = new Dictionary<string, double>
            {
                ["select_median_ms"] = Median(whole[name]),
                ["select_min_ms"] = whole[name].Min(),
                ["cpu_median_ms"] = Median(cpu[name]),
                ["initialize_cpu_median_ms"] = Median(p.Select(x => x.InitCpu)),
                ["adds_cpu_median_ms"] = Median(p.Select(x => x.AddCpu)),
                ["selected_score_cpu_median_ms"] = Median(p.Select(x => x.ScoreCpu)),
            };
            Console.WriteLine(
                $"{name,-12} N={n} b={b}: select median {Median(whole[name]):F1} ms (min {whole[name].Min():F1}, CPU median {Median(cpu[name]):F1} ms); phases median: Initialize {Median(p.Select(x => x.Init)):F1} ms, " +
                $"{chunks} Adds {Median(p.Select(x => x.Add)):F1} ms, SelectedScore {Median(p.Select(x => x.Score)):F1} ms; CPU {Median(p.Select(x => x.InitCpu)):F1} / {Median(p.Select(x => x.AddCpu)):F1} / {Median(p.Select(x => x.ScoreCpu)):F1} ms");
        }

        figures["reference_losses_scoring"] = new Dictionary<string, double>
        {
            ["wall_median_ms"] = Median(scoringWall),
            ["wall_min_ms"] = scoringWall.Min(),
            ["cpu_median_ms"] = Median(scoringCpu),
        };
        Console.WriteLine($"reference losses (Scoring, once per super-batch): wall median {Median(scoringWall):F1} ms (min {scoringWall.Min():F1}), CPU median {Median(scoringCpu):F1} ms");
        figures["softmax_shipped_same_selection_as_softmax"] = $"{shippedSame} of {reps}";

        // The target's figure: softmax over sigmoid, per round (both timed back to back), then the median.
        foreach (var (name, key) in new[] { ("softmax", "softmax_over_sigmoid"), ("softmax-shipped", "softmax_shipped_over_sigmoid") })
        {
            var wallRatio = Median(whole[name].Zip(whole["sigmoid"], (s, g) => s / g));
            var cpuRatio = Median(cpu[name].Zip(cpu["sigmoid"], (s, g) => s / g));
            figures[$"{key}_wall_median"] = wallRatio;
            figures[$"{key}_cpu_median"] = cpuRatio;
            Console.WriteLine($"{name} / sigmoid, median over rounds: wall {wallRatio:F2}×, CPU {cpuRatio:F2}×");
        }
        if (json is not null)
        {
            File.WriteAllText(json, System.Text.Json.JsonSerializer.Serialize(figures, Indented));
        }
    }

    /// <summary>A selection with fixed random chunks, timing each phase of the state.</summary>
    private static (double Init, double Add, double Score, double InitCpu, double AddCpu, double ScoreCpu) Phases(IScoreSource source, int n, int k, int seed)
    {
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        var order = Enumerable.Range(0, n).OrderBy(_ => new Random(seed).Next()).ToArray();
        new Random(seed).Shuffle(order);
        var state = source.Start(k);
        var scores = new double[n];
        var clock = Stopwatch.StartNew();
        state.Initialize(scores);
        double init = clock.Elapsed.TotalMilliseconds;
        process.Refresh();
        var cpu1 = process.TotalProcessorTime;
        clock.Restart();
        for (int t = 0; t < 16; t++)
        {
            state.Add(order.AsSpan(t * k, k), t == 15 ? [] : order.AsSpan((t + 1) * k), scores);
        }

        double add = clock.Elapsed.TotalMilliseconds;
        process.Refresh();
        var cpu2 = process.TotalProcessorTime;
        clock.Restart();
        _ = state.SelectedScore;
        double score = clock.Elapsed.TotalMilliseconds;
        process.Refresh();
        var cpu3 = process.TotalProcessorTime;
        return (init, add, score, (cpu1 - cpu0).TotalMilliseconds, (cpu2 - cpu1).TotalMilliseconds, (cpu3 - cpu2).TotalMilliseconds);
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "";

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted[sorted.Length / 2];
    }
}
