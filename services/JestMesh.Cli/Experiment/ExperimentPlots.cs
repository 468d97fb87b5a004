using ScottPlot;

namespace JestMesh.Cli.Experiment;

/// <summary>The experiment's plot: zero-shot accuracy vs steps, each policy's mean over seeds with a band from its lowest to its highest seed.</summary>
internal static class ExperimentPlots
{
    public const string AccuracyFile = "accuracy_vs_steps.png";

    /// <summary>Writes the plot; returns its file name.</summary>
    public static string Write(string directory, ExperimentResults results)
    {
        ArgumentNullException.ThrowIfNull(results);
        using var plot = new Plot();
        var groups = results.Runs.GroupBy(r => (r.Name, r.FilterRatio)).ToList();
        for (var g = 0; g < groups.Count; g++)
        {
            var runs = groups[g].ToList();
            var steps = runs.Select(r => r.Eval.Select(e => e.Step).ToArray()).MinBy(s => s.Length)!;
            var xs = steps.Select(s => (double)s).ToArray();
            var lo = new double[xs.Length];
            var hi = new double[xs.Length];
            var mean = new double[xs.Length];
            for (var k = 0; k < xs.Length; k++)
            {
                var values = runs.Select(r => r.Eval[k].ZeroShotAcc * 100).ToList();
                lo[k] = values.Min();
                hi[k] = values.Max();
                mean[k] = values.Average();
            }

            var color = plot.Add.Palette.GetColor(g);
            var band = plot.Add.FillY(xs, lo, hi);
            band.FillColor = color.WithAlpha(0.2);
            band.LineColor = Colors.Transparent;
            var line = plot.Add.Scatter(xs, mean);
            line.Color = color;
            line.LineWidth = 2;
            line.MarkerSize = 0;
            var name = runs[0].Policy == Curation.Policies.Uniform ? runs[0].Name : $"{runs[0].Name} f={RunSpec.F(runs[0].FilterRatio)}";
            line.LegendText = $"{name} (mean of {runs.Count} seeds; band min–max)";
        }

        plot.Title($"Zero-shot accuracy vs steps ({results.Protocol.Pool} pool, eval every {results.Protocol.EvalEvery} steps)");
        plot.XLabel("learner steps");
        plot.YLabel("zero-shot accuracy (%)");
        plot.ShowLegend(Edge.Right);
        plot.SavePng(Path.Combine(directory, AccuracyFile), 1200, 600);
        return AccuracyFile;
    }
}
