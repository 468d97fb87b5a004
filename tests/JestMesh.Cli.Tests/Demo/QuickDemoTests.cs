using System.Diagnostics;
using System.Text.Json;
using JestMesh.Cli.Demo;
using Xunit.Abstractions;

namespace JestMesh.Cli.Tests.Demo;

/// <summary>The quick demo runs alone: it starts its own broker and services and uses both cores.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class QuickDemoCollection
{
    public const string Name = "quick demo (end to end)";
}

/// <summary>
/// <c>jestmesh demo --quick</c> end to end: a private RabbitMQ broker, the Ingest, Scoring, Selection and
/// Trainer processes on loopback, the real dataset and TorchSharp. Checks what it wrote, not how fast.
/// </summary>
[Collection(QuickDemoCollection.Name)]
[Trait("Tier", "EndToEnd")]
public sealed class QuickDemoTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(60);

    private readonly string _out = Path.Combine(Path.GetTempPath(), "jestmesh-demo-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_out))
        {
            Directory.Delete(_out, recursive: true);
        }
    }

    [Fact]
    public async Task Quick_demo_writes_a_balanced_report_that_matches_its_results()
    {
        var repo = Repo.Locate();
        var cli = typeof(DemoRunner).Assembly.Location;
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = repo.Root, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { cli, "demo", "--quick", "--out", _out })
        {
            info.ArgumentList.Add(arg);
        }

        var lines = new List<string>();
        using var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (lines) { lines.Add(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (lines) { lines.Add(e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        // A deadline against a hang, not a speed check: 3 minutes on a quiet 2-core machine, but the
        // reference training and five runs share the cores with whatever else runs (other test
        // assemblies, other users), and at a load of 20-40 one quick demo took over 20 minutes.
        using (var deadline = new CancellationTokenSource(Deadline))
        {
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                await StopAsync(process);
                Assert.Fail($"the quick demo did not finish within {Deadline.TotalMinutes:0} minutes:\n" + string.Join('\n', lines.TakeLast(40)));
            }
        }

        output.WriteLine($"quick demo: exit {process.ExitCode} after {clock.Elapsed.TotalMinutes:0.0} min");
        lock (lines)
        {
            foreach (var l in lines.TakeLast(30))
            {
                output.WriteLine(l);
            }

            Assert.True(process.ExitCode == 0, $"the quick demo failed (exit {process.ExitCode}):\n{string.Join('\n', lines.TakeLast(40))}");
        }

        // Nothing it started is left: its broker directory is gone and no process runs from it.
        Assert.False(Directory.Exists(Path.Combine(_out, "broker")), "the demo left its broker directory behind");
        Assert.DoesNotContain(Process.GetProcesses(), p => CommandLine(p).Contains(_out, StringComparison.Ordinal));

        var json = File.ReadAllText(Path.Combine(_out, ReportWriter.ResultsFile));
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(["runs", "accounting", "stages"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        var results = ReportWriter.Read(Path.Combine(_out, ReportWriter.ResultsFile));
        Assert.Equal(["uniform", "JEST f=0.8", "learnability-independent f=0.8", "easy-reference f=0.8", "hard-learner f=0.8"], results.Runs.Select(r => r.Name));
        var steps = results.Runs[0].Steps;
        foreach (var r in results.Runs)
        {
            Assert.Equal(steps, r.Steps);
            Assert.Equal(128, r.BatchSize);
            Assert.True(r.Eval.Count >= MatchUniform.Window, $"{r.Name} has {r.Eval.Count} evaluations");
            Assert.Equal(steps, r.Eval[^1].Step);
            Assert.All(r.Eval, e => Assert.InRange(e.ZeroShotAcc, 0.0, 1.0));
            Assert.NotNull(r.WallPerStepMs);
            Assert.InRange(r.SwappedShareSelected!.Value, 0.0, 1.0);
        }

        // The accounting balances, and every super-batch of every run is accounted for.
        var a = results.Accounting;
        Assert.Equal(a.Produced, a.Trained + a.Filtered + a.DeadLettered);
        Assert.Equal(results.Runs.Count * (long)steps * 640, a.Produced);
        Assert.Equal(results.Runs.Count * (long)steps * 128, a.Trained);

        // Uniform selects at random from a 70%-swapped pool; JEST must pick far fewer swapped pairs than that.
        Assert.InRange(results.Runs[0].SwappedShareSelected!.Value, 0.6, 0.8);
        Assert.True(results.Runs[1].SwappedShareSelected < results.Runs[0].SwappedShareSelected - 0.2,
            $"JEST selected {results.Runs[1].SwappedShareSelected:P1} swapped pairs, uniform {results.Runs[0].SwappedShareSelected:P1}");

        // The stages come from the traces of every service.
        var spans = results.Stages.Spans.Select(s => s.Name).ToList();
        Assert.Superset(new HashSet<string> { "ingest.publish", "scoring.process", "selection.select", "trainer.step" }, spans.ToHashSet());

        // Every run's figures in report.md are those of results.json.
        var rows = ReportTable.Rows(File.ReadAllText(Path.Combine(_out, ReportWriter.ReportFile)));
        foreach (var r in results.Runs)
        {
            var row = rows[r.Name];
            Assert.Equal(Fmt.Pct(r.FinalZeroShotAcc), row["final zero-shot"]);
            Assert.Equal(Fmt.Pct(r.Eval[^1].RAt1), row["final R@1"]);
            Assert.Equal(Fmt.Step(r.StepsToMatchUniform), row["steps to match uniform"]);
            Assert.Equal(Fmt.Times(r.SpeedUp), row["speed-up"]);
            Assert.Equal(Fmt.Rel(r.ComputePerStepRel), row["compute / step (× uniform)"]);
            Assert.Equal(Fmt.Ms(r.WallPerStepMs), row["wall / step (ms)"]);
            Assert.Equal(Fmt.Pct(r.SwappedShareSelected), row["swapped among selected"]);
            output.WriteLine($"{r.Name}: final {Fmt.Pct(r.FinalZeroShotAcc)}, steps to match {Fmt.Step(r.StepsToMatchUniform)}, speed-up {Fmt.Times(r.SpeedUp)}, {Fmt.Ms(r.WallPerStepMs)} ms/step");
        }

        foreach (var png in new[] { "accuracy_vs_steps.png", "accuracy_vs_compute.png", "swapped_share.png", "selection_latency.png", "stages.png" })
        {
            Assert.True(new FileInfo(Path.Combine(_out, png)).Length > 1000, png);
        }
    }

    /// <summary>
    /// Ctrl-C first, which stops everything the demo started (its broker runs in a session of its own
    /// and would outlive a killed process tree), then a kill if it does not stop within two minutes.
    /// </summary>
    private static async Task StopAsync(Process demo)
    {
        using (var interrupt = Process.Start("kill", ["-INT", demo.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await interrupt.WaitForExitAsync();
        }
        using var grace = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await demo.WaitForExitAsync(grace.Token);
        }
        catch (OperationCanceledException)
        {
            demo.Kill(entireProcessTree: true);
        }
    }

    private static string CommandLine(Process p)
    {
        try
        {
            return File.ReadAllText($"/proc/{p.Id}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
        catch (UnauthorizedAccessException)
        {
            return "";
        }
    }
}
