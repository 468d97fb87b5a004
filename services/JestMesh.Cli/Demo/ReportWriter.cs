using System.Globalization;
using System.Text;
using System.Text.Json;

namespace JestMesh.Cli.Demo;

/// <summary>What the report says about how the runs were made (mode, settings, machine).</summary>
internal sealed record ReportContext(string Mode, bool ThroughServices, IReadOnlyList<string> Settings)
{
    /// <summary>The speed-up issue 6 asks of JEST at f = 0.8 in this mode (4 by default, 2 with --quick).</summary>
    public double SpeedUpTarget { get; init; } = 4;
}

/// <summary>
/// Writes DIR/results.json, DIR/report.md and the PNG plots. Every figure in report.md is formatted from
/// the same <see cref="DemoResults"/> object that is serialised to results.json, so the two always agree.
/// </summary>
internal static class ReportWriter
{
    public const string ResultsFile = "results.json";
    public const string ReportFile = "report.md";

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static void Write(string directory, DemoResults results, IReadOnlyList<RunData> runs, ReportContext context)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentNullException.ThrowIfNull(context);
        Directory.CreateDirectory(directory);
        var plots = Plots.WriteAll(directory, results, runs);
        WriteAtomically(Path.Combine(directory, ResultsFile), JsonSerializer.Serialize(results, Json));
        WriteAtomically(Path.Combine(directory, ReportFile), Markdown(results, context, plots));
    }

    public static DemoResults Read(string path) =>
        JsonSerializer.Deserialize<DemoResults>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{path} is empty.");

    private static void WriteAtomically(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    public static string Markdown(DemoResults results, ReportContext context, IReadOnlyList<(string File, string Caption)> plots)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(plots);
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("# JestMesh demo report");
        sb.AppendLine();
        sb.AppendLine(c, $"**{context.Mode}**");
        if (!context.ThroughServices)
        {
            sb.AppendLine();
            sb.AppendLine("> These runs used the in-process learner loop (`./jestmesh train --inproc`), not the service pipeline: they show the method, not the services.");
        }

        sb.AppendLine();
        foreach (var s in context.Settings)
        {
            sb.AppendLine(c, $"- {s}");
        }

        var uniform = results.Runs.FirstOrDefault(r => r.Policy == RunNames.Uniform);
        sb.AppendLine();
        sb.AppendLine("## Runs");
        sb.AppendLine();
        if (uniform is not null && uniform.Eval.Count >= MatchUniform.Window)
        {
            var target = MatchUniform.Target(uniform.Eval.Select(e => new EvalRow(e.Step, e.ZeroShotAcc, e.RAt1)).ToList());
            sb.AppendLine(c, $"Uniform's final zero-shot accuracy (mean of its last {MatchUniform.Window} evaluations): **{Fmt.Pct(target)}**. " +
                $"A run matches it at the first evaluation where the mean of {MatchUniform.Window} consecutive evaluations is at least that; speed-up = T / that step.");
            sb.AppendLine();
        }

        sb.AppendLine("| run | policy | f | independent | final zero-shot | final R@1 | steps to match uniform | speed-up | compute / step (× uniform) | compute speed-up | wall / step (ms) | swapped among selected |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results.Runs)
        {
            sb.AppendLine(c, $"| {r.Name} | {r.Policy} | {Fmt.Ratio(r.FilterRatio)} | {(r.Independent ? "yes" : "no")} | {Fmt.Pct(r.FinalZeroShotAcc)} | {Fmt.Pct(r.Eval[^1].RAt1)} | " +
                $"{Fmt.Step(r.StepsToMatchUniform)} | {Fmt.Times(r.SpeedUp)} | {Fmt.Rel(r.ComputePerStepRel)} | {Fmt.Times(r.ComputeSpeedUp)} | {Fmt.Ms(r.WallPerStepMs)} | {Fmt.Pct(r.SwappedShareSelected)} |");
        }

        sb.AppendLine();
        sb.AppendLine(c, $"Compute convention: {ComputeAccounting.Convention}.");
        sb.AppendLine();
        sb.AppendLine(c, $"Ranking by final zero-shot accuracy: {string.Join(" > ", results.Runs.OrderByDescending(r => r.FinalZeroShotAcc).Select(r => r.Name))}.");
        var jest = results.Runs.FirstOrDefault(r => r.Policy == RunNames.Learnability && !r.Independent && Math.Abs(r.FilterRatio - 0.8) < 1e-9);
        if (jest is not null && uniform is not null)
        {
            var points = (jest.FinalZeroShotAcc - uniform.FinalZeroShotAcc) * 100;
            sb.AppendLine();
            sb.AppendLine(c, $"JEST f=0.8: speed-up {Fmt.Times(jest.SpeedUp)} (target ≥ {context.SpeedUpTarget:0}×: {(jest.SpeedUp >= context.SpeedUpTarget ? "met" : "**not met**")}); " +
                $"final {points:+0.00;-0.00} points against uniform (target ≥ +2: {(points >= 2 ? "met" : "**not met**")}).");
        }
        sb.AppendLine();
        sb.AppendLine("## Accounting");
        sb.AppendLine();
        var a = results.Accounting;
        sb.AppendLine("| produced | trained | filtered | dead-lettered | balances |");
        sb.AppendLine("|---|---|---|---|---|");
        sb.AppendLine(c, $"| {a.Produced} | {a.Trained} | {a.Filtered} | {a.DeadLettered} | {(a.Balances ? "yes" : "**NO**")} |");
        sb.AppendLine();
        sb.AppendLine("Every example produced must be trained on (selected), filtered out (not selected) or dead-lettered, exactly once.");
        sb.AppendLine();
        sb.AppendLine("## Pipeline stages");
        sb.AppendLine();
        sb.AppendLine(c, $"Source: {results.Stages.Source}.");
        sb.AppendLine();
        if (results.Stages.Spans.Count > 0)
        {
            sb.AppendLine("| span | count | mean (ms) | p50 (ms) | p95 (ms) | total (s) |");
            sb.AppendLine("|---|---|---|---|---|---|");
            foreach (var s in results.Stages.Spans)
            {
                sb.AppendLine(c, $"| {s.Name} | {s.Count} | {Fmt.Ms(s.MeanMs)} | {Fmt.Ms(s.P50Ms)} | {Fmt.Ms(s.P95Ms)} | {Fmt.Seconds(s.TotalS)} |");
            }

            sb.AppendLine();
        }

        if (results.Stages.SelectionLatencyMs is { } l)
        {
            sb.AppendLine(c, $"Selection latency (building S and sampling, per curated batch, all runs): n = {l.Count}, mean {Fmt.Ms(l.Mean)} ms, p50 {Fmt.Ms(l.P50)} ms, p95 {Fmt.Ms(l.P95)} ms, max {Fmt.Ms(l.Max)} ms.");
            sb.AppendLine();
        }

        if (results.Stages.TrainerStall.Count > 0)
        {
            sb.AppendLine("### Trainer time per run");
            sb.AppendLine();
            if (context.ThroughServices)
            {
                sb.AppendLine("Runs go one after another on one Scoring service whose reference-embedding cache starts cold: the first run (uniform) " +
                    "waits while Scoring embeds the pool for the first time, later runs find the embeddings cached. So the runs are compared on the " +
                    "learner's own time per step (its scoring passes and training steps, no waiting for data, no evaluation); the wait is shown apart.");
            }
            else
            {
                sb.AppendLine("In-process there is no stream to wait on; \"evaluation\" is the run's wall time outside its steps (evaluation and set-up).");
            }

            sb.AppendLine();
            sb.AppendLine("| run | trainer data stall (share of wall time waiting for data) | wall (s) | waiting for data (s) | learner: scoring + training (s) | evaluation (s) | learner / step (ms) |");
            sb.AppendLine("|---|---|---|---|---|---|---|");
            foreach (var s in results.Stages.TrainerStall)
            {
                sb.AppendLine(c, $"| {s.Run} | {Fmt.Pct(s.Share)} | {Fmt.Seconds(s.WallS)} | {Fmt.Seconds(s.WaitS)} | {Fmt.Seconds(s.LearnerS)} | {Fmt.Seconds(s.EvalS)} | {Fmt.Ms(s.LearnerMsPerStep)} |");
            }

            sb.AppendLine();
        }

        sb.AppendLine("## Plots");
        sb.AppendLine();
        foreach (var (file, caption) in plots)
        {
            sb.AppendLine(c, $"![{caption}]({file})");
            sb.AppendLine();
        }

        return sb.ToString();
    }
}

/// <summary>The one way the report formats each kind of figure (tests parse report.md with the same rules).</summary>
internal static class Fmt
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    public static string Pct(double? x) => x is { } v ? (v * 100).ToString("0.00", C) + "%" : "–";

    public static string Ratio(double x) => x.ToString("0.0#", C);

    public static string Step(int? s) => s is { } v ? v.ToString(C) : "never";

    public static string Times(double? x) => x is { } v ? v.ToString("0.00", C) + "×" : "–";

    public static string Rel(double x) => x.ToString("0.000", C);

    public static string Ms(double? x) => x is { } v ? v.ToString("0.0", C) : "–";

    public static string Seconds(double? x) => x is { } v ? v.ToString("0.00", C) : "–";
}
