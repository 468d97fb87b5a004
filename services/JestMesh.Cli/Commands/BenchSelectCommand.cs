using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Reflection.PortableExecutable;
using System.Text.Json;
using JestMesh.Cli.InProcess;
using JestMesh.Curation;
using JestMesh.Data;

namespace JestMesh.Cli.Commands;

/// <summary>
/// <c>jestmesh bench select</c>: what one <c>./jestmesh select</c> costs as a fresh process (its own <c>elapsed_ms</c>
/// and the whole process), under runtime settings given as environment variables, next to the same selection
/// in a hot process (first call and steady state), on a synthetic super-batch of N pairs. Writes JSON.
/// </summary>
internal static class BenchSelectCommand
{
    private static readonly string[] DefaultConfigs =
        ["default", "DOTNET_TieredCompilation=0", "DOTNET_TC_QuickJitForLoops=0", "DOTNET_TieredPGO=0", "DOTNET_ReadyToRun=0"];

    public static Command Create()
    {
        var n = new Option<int>("--n") { Description = "Super-batch size N.", DefaultValueFactory = _ => 4096 };
        var batch = new Option<int>("--batch-size") { Description = "b: examples selected.", DefaultValueFactory = _ => 1024 };
        var runs = new Option<int>("--runs") { Description = "Fresh processes per configuration.", DefaultValueFactory = _ => 7 };
        var hotRuns = new Option<int>("--hot-runs") { Description = "Timed selections in the hot process (after 5 untimed).", DefaultValueFactory = _ => 25 };
        var configs = new Option<string[]>("--config")
        {
            Description = "A configuration of the fresh processes: 'default' or VAR=VALUE[,VAR=VALUE] environment settings (repeatable; default: default, TieredCompilation=0, TC_QuickJitForLoops=0, TieredPGO=0, ReadyToRun=0).",
            AllowMultipleArgumentsPerToken = true,
        };
        var json = new Option<string>("--json") { Description = "Write the figures to this JSON file." };
        var command = new Command("select", "One-shot cost of `./jestmesh select` (fresh processes) against the same selection in a hot process.");
        foreach (var o in new Option[] { n, batch, runs, hotRuns, configs, json })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            var list = parse.GetValue(configs) is { Length: > 0 } given ? given : DefaultConfigs;
            var result = await RunAsync(parse.GetValue(n), parse.GetValue(batch), parse.GetValue(runs), parse.GetValue(hotRuns), list, cancellationToken);
            var hot = result.Hot;
            Console.WriteLine($"select N={result.N} b={result.B}: hot median {hot.MedianMs:F1} ms wall, {hot.MedianCpuMs:F1} ms CPU (first call in a process {hot.FirstCallMs:F1} ms, {hot.FirstCallCpuMs:F1} ms CPU); " +
                $"load average {result.LoadAverageBefore} → {result.LoadAverageAfter}");
            foreach (var c in result.OneShot)
            {
                Console.WriteLine($"  {c.Config,-32} elapsed_ms median {c.MedianElapsedMs,7:F1} ({c.MedianElapsedMs / hot.MedianMs:F2}× hot), CPU {c.MedianCpuMs,7:F1} ms ({c.MedianCpuMs / hot.MedianCpuMs:F2}× hot), " +
                    $"load {c.MedianLoadMs,6:F1} ms, process {c.MedianProcessMs,6:F0} ms");
            }

            if (parse.GetValue(json) is { } path)
            {
                JsonFiles.Write(path, result);
            }

            return 0;
        });
        return command;
    }

    private static async Task<SelectBenchResult> RunAsync(int n, int b, int runs, int hotRuns, IReadOnlyList<string> configs, CancellationToken cancellationToken)
    {
        var loadBefore = LoadAverage();
        var dir = Path.Combine(Path.GetTempPath(), "jestmesh-bench-select-" + Guid.NewGuid().ToString("N"));
        try
        {
            SelectSample.Write(dir, TextWriter.Null, n);
            string P(string name) => Path.Combine(dir, name);
            var alpha = SelectSample.Alpha.ToString(CultureInfo.InvariantCulture);
            var beta = SelectSample.Beta.ToString(CultureInfo.InvariantCulture);
            string[] args = ["select", "--learner-img", P("learner_img.npy"), "--learner-txt", P("learner_txt.npy"), "--learner-alpha", alpha, "--learner-beta", beta,
                "--ref-img", P("ref_img.npy"), "--ref-txt", P("ref_txt.npy"), "--ref-alpha", alpha, "--ref-beta", beta,
                "--batch-size", b.ToString(CultureInfo.InvariantCulture), "--out", P("selected.npy"), "--summary", P("summary.json")];

            // Fresh processes first (the hot loop below would heat the machine's caches, not the processes').
            var oneShot = new List<OneShotConfig>();
            foreach (var config in configs)
            {
                var env = ParseConfig(config);
                var elapsed = new List<double>();
                var load = new List<double>();
                var cpu = new List<double>();
                var process = new List<double>();
                for (var i = 0; i < runs; i++)
                {
                    var clock = Stopwatch.StartNew();
                    var code = await RunSelfAsync(args, env, cancellationToken);
                    process.Add(clock.Elapsed.TotalMilliseconds);
                    if (code != 0)
                    {
                        throw new InvalidOperationException($"`jestmesh {string.Join(' ', args)}` with {config} failed (exit {code}).");
                    }

                    using var summary = JsonDocument.Parse(File.ReadAllText(P("summary.json")));
                    elapsed.Add(summary.RootElement.GetProperty("elapsed_ms").GetDouble());
                    load.Add(summary.RootElement.TryGetProperty("load_ms", out var l) ? l.GetDouble() : double.NaN);
                    cpu.Add(summary.RootElement.TryGetProperty("cpu_ms", out var c) ? c.GetDouble() : double.NaN);
                }

                oneShot.Add(new OneShotConfig(config, env, elapsed, Median(elapsed), cpu, Median(cpu), Median(load), Median(process)));
            }

            var hot = Hot(P, b, hotRuns);
            return new SelectBenchResult(n, b, SelectSample.Dim, 16, 100, Environment.ProcessorCount, Environment.Version.ToString(),
                typeof(BenchSelectCommand).Assembly.Location, IsReadyToRun(typeof(JointSampler).Assembly.Location), IsReadyToRun(typeof(BenchSelectCommand).Assembly.Location),
                DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture), loadBefore, LoadAverage(), hot, oneShot);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The same selection repeated in this process: the first call (JIT and first touch included), then the steady state.</summary>
    private static HotFigures Hot(Func<string, string> p, int b, int hotRuns)
    {
        var (li, shape) = NpyFile.ReadFloat32(p("learner_img.npy"));
        var (lt, _) = NpyFile.ReadFloat32(p("learner_txt.npy"));
        var (ri, _) = NpyFile.ReadFloat32(p("ref_img.npy"));
        var (rt, _) = NpyFile.ReadFloat32(p("ref_txt.npy"));
        var learner = new ContrastiveEmbeddings(li, lt, shape[0], shape[1], SelectSample.Alpha, SelectSample.Beta);
        var reference = new ContrastiveEmbeddings(ri, rt, shape[0], shape[1], SelectSample.Alpha, SelectSample.Beta);
        (double Wall, double Cpu) Once()
        {
            var source = ScoreSources.SigmoidContrastive(SelectionPolicy.Learnability, learner, reference);
            var cpu = Environment.CpuUsage.TotalTime;
            var wall = JointSampler.Select(source, new SamplerOptions { BatchSize = b, Chunks = 16, Gain = 100 }, new Random(0)).Elapsed.TotalMilliseconds;
            return (wall, (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds);
        }

        var first = Once();
        for (var i = 0; i < 5; i++)
        {
            Once();
        }

        var times = Enumerable.Range(0, hotRuns).Select(_ => Once()).ToList();
        var wall = times.Select(t => t.Wall).ToList();
        var cpu = times.Select(t => t.Cpu).ToList();
        return new HotFigures(first.Wall, first.Cpu, Median(wall), wall.Min(), Median(cpu), wall);
    }

    private static Dictionary<string, string> ParseConfig(string config)
    {
        var env = new Dictionary<string, string>();
        if (config == "default")
        {
            return env;
        }

        foreach (var part in config.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"--config '{config}': expected 'default' or VAR=VALUE[,VAR=VALUE].");
            }

            env[part[..eq]] = part[(eq + 1)..];
        }

        return env;
    }

    /// <summary>Runs this CLI again as ./jestmesh does (<c>dotnet jestmesh.dll</c>, or the app host when published).</summary>
    private static async Task<int> RunSelfAsync(string[] args, Dictionary<string, string> env, CancellationToken cancellationToken)
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var info = new ProcessStartInfo(host) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            info.ArgumentList.Add(typeof(BenchSelectCommand).Assembly.Location);
        }

        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env)
        {
            info.Environment[k] = v;
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {host}.");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            Console.Error.Write(await stdout + await stderr);
        }

        return process.ExitCode;
    }

    /// <summary>Whether the assembly carries ReadyToRun (precompiled) code.</summary>
    internal static bool IsReadyToRun(string path)
    {
        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        return pe.PEHeaders.CorHeader is { ManagedNativeHeaderDirectory.Size: > 0 };
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static double Median(List<double> values) => values.Count == 0 ? double.NaN : Demo.Stats.Quantile(values, 0.5);
}

/// <summary>The JSON of <c>jestmesh bench select</c>.</summary>
internal sealed record SelectBenchResult(
    int N, int B, int Dim, int Chunks, double Gain, int Cores, string Runtime, string Cli, bool CurationReadyToRun, bool CliReadyToRun, string UtcTime,
    string LoadAverageBefore, string LoadAverageAfter, HotFigures Hot, IReadOnlyList<OneShotConfig> OneShot);

/// <summary>The selection repeated in one process: its first call, then the median and minimum of the timed calls, ms (wall, and CPU time of the process).</summary>
internal sealed record HotFigures(double FirstCallMs, double FirstCallCpuMs, double MedianMs, double MinMs, double MedianCpuMs, IReadOnlyList<double> TimesMs);

/// <summary>Fresh <c>select</c> processes under one runtime configuration: their own elapsed_ms, cpu_ms and load_ms, and whole-process wall times.</summary>
internal sealed record OneShotConfig(
    string Config, IReadOnlyDictionary<string, string> Environment, IReadOnlyList<double> ElapsedMs, double MedianElapsedMs, IReadOnlyList<double> CpuMs, double MedianCpuMs,
    double MedianLoadMs, double MedianProcessMs);
