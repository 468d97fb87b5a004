using System.Globalization;
using System.Text;

namespace JestMesh.Cli.Experiment;

/// <summary>report.md of an experiment directory, from results.json's object.</summary>
internal static class ExperimentReport
{
    public static void Write(string path, ExperimentResults results, string? plot)
    {
        ArgumentNullException.ThrowIfNull(results);
        var p = results.Protocol;
        var sb = new StringBuilder();
        sb.AppendLine("# JestMesh experiment (issue 15 protocol)").AppendLine();
        sb.AppendLine(Invariant($"- pool **{p.Pool}** (data fingerprint {p.DataFingerprint}), reference SHA-256 {p.ReferenceSha256[..Math.Min(16, p.ReferenceSha256.Length)]}…"));
        sb.AppendLine(Invariant($"- T = {p.Steps}, b = {p.BatchSize}, evaluation every {p.EvalEvery} steps on {p.EvalExamples} test images, sampler {p.Chunks} chunks (1 when independent), gain {p.Gain}"));
        sb.AppendLine($"- final = {p.Final}; steps to match = {p.StepsToMatch}; speed-up = T / steps to match");
        sb.AppendLine($"- compute: {p.ComputeConvention}");
        sb.AppendLine($"- wall: {p.WallConvention}");
        sb.AppendLine("- in-run time speed-up (added after the runs met very different machine loads; not pre-registered): speed-up / (the run's mean step wall time / its own mean optimiser-step time), both measured in the same run");
        sb.AppendLine(p.Path == ProtocolInfo.Services
            ? "- through the services: a private broker, Scoring and Selection for the invocation, an Ingest and a Trainer per run (its own job), local processes on loopback; runs one after another; " +
              "figures from the Trainer's run-summary.json (scoring and training ms/step are its totals over its steps), the batch log and the dead-letter queue"
            : "- in-process learner loop (the loop of `train --inproc`), runs one after another; not through the services").AppendLine();

        sb.AppendLine("## Summary (mean over seeds; ± = 95 % t-interval half-width; a mean is – when a seed has no value, e.g. never matched)").AppendLine();
        sb.AppendLine("| run | seeds | final zero-shot | final − uniform (points) | speed-up | compute / step | compute speed-up | wall speed-up | in-run time speed-up | cheap-vs-exact Spearman |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var s in results.Summary)
        {
            sb.AppendLine(Invariant($"| {s.Name} | {s.Seeds} | {s.FinalMean * 100:F2} %{Pm(s.FinalCi95, 100)} | {Points(s.FinalMinusUniformMean)}{Pm(s.FinalMinusUniformCi95, 100)} | {ExperimentRunner.Fmt(s.SpeedUpMean)} | {s.ComputePerStepRel:F3} | {ExperimentRunner.Fmt(s.ComputeSpeedUpMean)} | {ExperimentRunner.Fmt(s.WallSpeedUpMean)} | {ExperimentRunner.Fmt(s.TimeSpeedUpMean)} | {(s.SpearmanLearnabilityMean is { } r ? r.ToString("F3", CultureInfo.InvariantCulture) : "–")} |"));
        }

        sb.AppendLine().AppendLine("## Every run").AppendLine();
        sb.AppendLine("| run | f | seed | final | − uniform | steps to match | speed-up | compute speed-up | wall speed-up | in-run time speed-up | scoring ms/step | train ms/step | step wall ms | swapped among selected | load start→end | wall (s) |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results.Runs)
        {
            sb.AppendLine(Invariant($"| {r.Name} | {r.FilterRatio} | {r.Seed} | {r.Final * 100:F2} % | {Points(r.FinalMinusUniform)} | {r.StepsToMatch?.ToString(CultureInfo.InvariantCulture) ?? "never"} | {ExperimentRunner.Fmt(r.SpeedUp)} | {ExperimentRunner.Fmt(r.ComputeSpeedUp)} | {ExperimentRunner.Fmt(r.WallSpeedUp)} | {ExperimentRunner.Fmt(r.TimeSpeedUp)} | {(r.Scoring.LearnerScoringMsMean is { } ms ? ms.ToString("F1", CultureInfo.InvariantCulture) : "–")} | {r.Scoring.TrainMsMean:F1} | {r.Scoring.StepWallMsMean:F1} | {r.MeanSwappedShare * 100:F1} % | {r.LoadStart:F1}→{r.LoadEnd:F1} | {r.WallSeconds:F0} |"));
        }

        var cheap = results.Runs.Where(r => r.CheapVsExact is not null).ToList();
        if (cheap.Count > 0)
        {
            sb.AppendLine().AppendLine("## Cheap vs exact learner scoring on the same super-batches").AppendLine();
            sb.AppendLine("Every evaluation interval, the super-batch the cheap run scored is also scored at 28×28 by the same learner (outside the step's timing); " +
                "per-example learnability S_ii = L_learner(i,i) − L_ref(i,i) compared by Spearman rank correlation, and the share of the exact top-b that the cheap top-b keeps.").AppendLine();
            sb.AppendLine("| run | seed | checks | Spearman learnability | Spearman learner loss | top-b overlap | forward cost vs 28 px (MACs) | measured scoring / training step (time) |");
            sb.AppendLine("|---|---|---|---|---|---|---|---|");
            foreach (var r in cheap)
            {
                var c = r.CheapVsExact!;
                sb.AppendLine(Invariant($"| {r.Name} | {r.Seed} | {c.Checks} | {c.SpearmanLearnabilityMean:F3} | {c.SpearmanLearnerLossMean:F3} | {c.TopBOverlapMean:F3} | {r.Scoring.ForwardRelToFull:F3} | {r.Scoring.MeasuredScoringRelToTrainStep:F2} |"));
            }
        }

        if (plot is not null)
        {
            sb.AppendLine().AppendLine($"![zero-shot accuracy vs steps, mean and min–max band over seeds]({plot})");
        }

        File.WriteAllText(path, sb.ToString());
    }

    private static string Points(double? diff) => diff is { } d ? (d * 100).ToString("+0.00;-0.00;0.00", CultureInfo.InvariantCulture) : "–";

    private static string Pm(double? halfWidth, double scale) => halfWidth is { } h ? " ± " + (h * scale).ToString("F2", CultureInfo.InvariantCulture) : "";

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
