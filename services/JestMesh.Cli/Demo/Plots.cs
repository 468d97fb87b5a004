using ScottPlot;

namespace JestMesh.Cli.Demo;

/// <summary>The demo's PNG plots (ScottPlot 5), drawn from the same objects as results.json.</summary>
internal static class Plots
{
    private const int Width = 960;
    private const int Height = 600;

    /// <summary>Writes every plot there is data for; returns (file, caption) in report order.</summary>
    public static IReadOnlyList<(string File, string Caption)> WriteAll(string directory, DemoResults results, IReadOnlyList<RunData> runs)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(runs);
        var written = new List<(string, string)>();
        Save(directory, "accuracy_vs_steps.png", "Zero-shot accuracy vs learner steps", written, plot =>
        {
            foreach (var r in results.Runs)
            {
                Line(plot, r.Eval.Select(e => (double)e.Step).ToArray(), r.Eval.Select(e => e.ZeroShotAcc * 100).ToArray(), r.Name);
            }

            plot.XLabel("learner steps");
            plot.YLabel("zero-shot accuracy (%)");
        });
        Save(directory, "accuracy_vs_compute.png", "Zero-shot accuracy vs compute", written, plot =>
        {
            foreach (var r in results.Runs)
            {
                Line(plot, r.Eval.Select(e => e.Step * r.ComputePerStepRel).ToArray(), r.Eval.Select(e => e.ZeroShotAcc * 100).ToArray(), r.Name);
            }

            plot.XLabel($"compute in uniform-step units ({ComputeAccounting.ShortConvention})");
            plot.YLabel("zero-shot accuracy (%)");
        });
        if (runs.Any(r => r.SwappedShare.Count > 0))
        {
            Save(directory, "swapped_share.png", "Share of swapped pairs among selected examples", written, plot =>
            {
                foreach (var r in runs.Where(r => r.SwappedShare.Count > 0))
                {
                    var w = ResultsBuilder.Windows(r.SwappedShare, r.Eval);
                    Line(plot, w.Select(p => (double)p.Step).ToArray(), w.Select(p => p.Value * 100).ToArray(), r.Name);
                }

                plot.XLabel("learner steps (mean over the steps since the previous evaluation)");
                plot.YLabel("swapped among selected (%)");
            });
        }

        if (runs.Any(r => r.SelectionMs.Count > 0))
        {
            Save(directory, "selection_latency.png", "Selection latency distribution (CDF)", written, plot =>
            {
                foreach (var r in runs.Where(r => r.SelectionMs.Count > 0))
                {
                    var sorted = r.SelectionMs.Order().ToArray();
                    Line(plot, sorted, sorted.Select((_, i) => (i + 1) * 100.0 / sorted.Length).ToArray(), r.Name, markers: false);
                }

                plot.XLabel("selection latency per curated batch (ms)");
                plot.YLabel("share of batches at or below (%)");
            });
        }

        if (results.Stages.Spans.Count > 0)
        {
            Save(directory, "stages.png", "Mean time per pipeline stage (from traces)", written, plot =>
            {
                var spans = results.Stages.Spans;
                var bars = spans.Select((s, i) => new Bar { Position = spans.Count - 1 - i, Value = s.MeanMs, FillColor = Colors.SteelBlue }).ToList();
                var barPlot = plot.Add.Bars(bars);
                barPlot.Horizontal = true;
                plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
                    spans.Select((_, i) => (double)(spans.Count - 1 - i)).ToArray(), spans.Select(s => s.Name).ToArray());
                plot.Axes.Margins(left: 0);
                plot.XLabel("mean duration per span (ms)");
            });
        }

        return written;
    }

    private static void Line(Plot plot, double[] xs, double[] ys, string label, bool markers = true)
    {
        var s = plot.Add.Scatter(xs, ys);
        s.LegendText = label;
        s.LineWidth = 2;
        s.MarkerSize = markers ? 5 : 0;
    }

    private static void Save(string directory, string file, string title, List<(string, string)> written, Action<Plot> draw)
    {
        using var plot = new Plot();
        draw(plot);
        plot.Title(title);
        // Outside the data area: the curves never hide behind it.
        plot.ShowLegend(Edge.Right);
        plot.SavePng(Path.Combine(directory, file), Width, Height);
        written.Add((file, title));
    }
}
