using ScottPlot;

namespace JestMesh.Cli.Demo;

/// <summary>The demo's PNG plots (ScottPlot 5), drawn from the same objects as results.json.</summary>
internal static class Plots
{
    private const int Width = 960;
    private const int Height = 600;

    /// <summary>Latencies below this are drawn at it on the log axis (a log axis has no 0).</summary>
    private const double MinLatencyMs = 1e-3;

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
            Save(directory, "selection_latency.png", "Selection latency distribution (CDF, log scale)", written, plot =>
            {
                // Every batch takes a few ms at most: a log axis shows the body and the tail of each curve.
                foreach (var r in runs.Where(r => r.SelectionMs.Count > 0))
                {
                    var sorted = r.SelectionMs.Order().ToArray();
                    Line(plot, sorted.Select(ms => Math.Log10(Math.Max(ms, MinLatencyMs))).ToArray(), sorted.Select((_, i) => (i + 1) * 100.0 / sorted.Length).ToArray(), r.Name, markers: false);
                }

                var all = runs.SelectMany(r => r.SelectionMs).Select(ms => Math.Max(ms, MinLatencyMs)).ToList();
                var (ticks, labels) = LogTicks(all.Min(), all.Max());
                plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks, labels);
                plot.Axes.SetLimits(Math.Log10(all.Min()) - 0.05, Math.Log10(all.Max()) + 0.05, 0, 102);
                plot.XLabel("selection latency per curated batch (ms, log scale)");
                plot.YLabel("share of batches at or below (%)");
            });
        }

        if (results.Stages.Spans.Count > 0)
        {
            Save(directory, "stages.png", "Mean time per pipeline stage (from traces)", written, plot =>
            {
                // Horizontal bars, first stage of the journey on top; explicit limits so every bar and name is in view.
                var spans = results.Stages.Spans;
                var positions = spans.Select((_, i) => (double)(spans.Count - 1 - i)).ToArray();
                var bars = plot.Add.Bars(positions, spans.Select(s => s.MeanMs).ToArray());
                bars.Horizontal = true;
                bars.Color = Colors.SteelBlue;
                plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, spans.Select(s => s.Name).ToArray());
                plot.Axes.SetLimits(0, Math.Max(spans.Max(s => s.MeanMs), 1e-3) * 1.1, -0.6, spans.Count - 0.4);
                plot.XLabel("mean duration per span (ms)");
            });
        }

        return written;
    }

    /// <summary>Ticks at 1, 2 and 5 × 10^k from just below <paramref name="min"/> to just above <paramref name="max"/>, as log10 positions with ms labels.</summary>
    internal static (double[] Positions, string[] Labels) LogTicks(double min, double max)
    {
        var positions = new List<double>();
        var labels = new List<string>();
        for (var k = (int)Math.Floor(Math.Log10(min)) - 1; k <= (int)Math.Ceiling(Math.Log10(max)); k++)
        {
            foreach (var m in new[] { 1.0, 2.0, 5.0 })
            {
                var v = m * Math.Pow(10, k);
                if (v >= min / 1.2 && v <= max * 1.2)
                {
                    positions.Add(Math.Log10(v));
                    labels.Add(v.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture));
                }
            }
        }

        return ([.. positions], [.. labels]);
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
        // Outside the data area: the curves never hide behind it. A plot without labelled series (the stages) has
        // no legend: an empty legend panel at the edge left the whole image blank.
        if (plot.GetPlottables().Any(p => p.LegendItems.Any(i => !string.IsNullOrEmpty(i.LabelText))))
        {
            plot.ShowLegend(Edge.Right);
        }

        plot.SavePng(Path.Combine(directory, file), Width, Height);
        written.Add((file, title));
    }
}
