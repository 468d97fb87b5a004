using JestMesh.Models;
using System.CommandLine;
using System.Globalization;
using System.Text;
using JestMesh.Cli.InProcess;

namespace JestMesh.Cli.Commands;

/// <summary><c>jestmesh report inproc</c>: the experiment table (accuracy, R@1, step cost, swapped share, speed-up) from metrics.json files.</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var baseline = new Option<string>("--baseline") { Description = "Directory of the uniform run (its metrics.json).", Required = true };
        var runs = new Option<string[]>("--run") { Description = "Directories of the runs to compare (repeat).", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<string>("--out") { Description = "Directory for report.md and report.json.", Required = true };
        var inproc = new Command("inproc", "Compare in-process learner runs against the uniform baseline.");
        inproc.Options.Add(baseline);
        inproc.Options.Add(runs);
        inproc.Options.Add(output);
        inproc.SetAction(parse =>
        {
            try
            {
                var rows = Build(parse.GetValue(baseline)!, parse.GetValue(runs)!);
                var dir = parse.GetValue(output)!;
                Directory.CreateDirectory(dir);
                JsonFiles.Write(Path.Combine(dir, "report.json"), rows);
                var md = Markdown(rows);
                File.WriteAllText(Path.Combine(dir, "report.md"), md);
                Console.Write(md);
                return 0;
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidDataException or ArgumentException)
            {
                Console.Error.WriteLine($"report: {e.Message}");
                return 1;
            }
        });
        var report = new Command("report", "Reports over finished runs.");
        report.Subcommands.Add(inproc);
        return report;
    }

    internal static List<ReportRow> Build(string baselineDir, IEnumerable<string> runDirs)
    {
        var uniform = JsonFiles.Read<LearnerMetricsFile>(Path.Combine(baselineDir, "metrics.json"));
        var target = SpeedUp.Target(uniform.Eval);
        var uniformMedian = Median(uniform.StepWallMs);
        var rows = new List<ReportRow>();
        foreach (var dir in new[] { baselineDir }.Concat(runDirs.Where(d => Path.GetFullPath(d) != Path.GetFullPath(baselineDir))))
        {
            var m = JsonFiles.Read<LearnerMetricsFile>(Path.Combine(dir, "metrics.json"));
            if (m.Steps != uniform.Steps || m.BatchSize != uniform.BatchSize || m.DataFingerprint != uniform.DataFingerprint)
            {
                throw new InvalidDataException(
                    $"{dir} ran T={m.Steps}, b={m.BatchSize}, data {m.DataFingerprint}; the baseline ran T={uniform.Steps}, b={uniform.BatchSize}, data {uniform.DataFingerprint}: not comparable.");
            }

            var reach = SpeedUp.ReachStep(m.Eval, target);
            var last = m.Eval[^1];
            var scored = m.Policy != Curation.Policies.Uniform;
            rows.Add(new ReportRow(m.Run, scored ? m.Gain : null, scored ? m.Chunks : null, last.ZeroShotAcc, SpeedUp.Target(m.Eval), last.RAt1, m.StepWallMs.Average(), Median(m.StepWallMs),
                Median(m.StepWallMs) / uniformMedian, m.MeanSwappedShare, target, reach, SpeedUp.Factor(m.Steps, reach), m.Threads, Path.GetFullPath(dir)));
        }

        return rows;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Markdown(List<ReportRow> rows)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(c, $"Target (uniform's final accuracy, mean of its last 3 evaluations): {rows[0].Target:P2}");
        sb.AppendLine();
        sb.AppendLine("| run | gain | chunks | final zero-shot | last-3 mean | final R@1 | step ms (mean / median) | × uniform (median) | swapped selected | reaches target at | speed-up |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            sb.AppendLine(c, $"| {r.Run} | {(r.Gain is { } g ? g.ToString(c) : "–")} | {(r.Chunks is { } k ? k.ToString(c) : "–")} | {r.FinalZeroShot:P2} | {r.LastThreeMean:P2} | {r.FinalRAt1:P2} | {r.MeanStepMs:F1} / {r.MedianStepMs:F1} | " +
                $"{r.StepCostVsUniform:F2} | {r.SwappedShareSelected:P1} | {(r.ReachStep is { } s ? s.ToString(c) : "never")} | {(r.SpeedUp is { } f ? f.ToString("F2", c) + "×" : "–")} |");
        }

        return sb.ToString();
    }
}

/// <summary>The fields of a learner metrics.json the report reads.</summary>
internal sealed record LearnerMetricsFile(
    string Run, string Policy, double Gain, int Chunks, int Steps, int BatchSize, string DataFingerprint, int Threads,
    List<EvalPoint> Eval, List<double> StepWallMs, double MeanSwappedShare);

/// <summary>One line of the experiment table.</summary>
internal sealed record ReportRow(
    string Run, double? Gain, int? Chunks, double FinalZeroShot, double LastThreeMean, double FinalRAt1, double MeanStepMs, double MedianStepMs,
    double StepCostVsUniform, double SwappedShareSelected, double Target, int? ReachStep, double? SpeedUp, int Threads, string Directory);
