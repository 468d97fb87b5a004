using System.Globalization;
using JestMesh.Cli.InProcess;
using JestMesh.Models;

namespace JestMesh.Cli.Experiment;

/// <summary>
/// Runs the protocol's runs one after another, through the in-process learner loop (the loop `train --inproc`
/// runs: the same <c>LearnerSession</c>, <c>CurationStep</c> and <c>ReferenceScorer</c> the services run) or through
/// the services (<see cref="ServicesExperiment"/>), each into DIR/runs/SLUG. A run whose run.json exists is done and is not run again; run.json is written only once
/// the run has finished, so an interrupted run starts over. After every run, results.json, report.md and the
/// plot are rewritten from every finished run in DIR.
/// </summary>
internal sealed class ExperimentRunner(
    ProtocolInfo protocol,
    string outDirectory,
    Func<RunSpec, string, RunRecord> train,
    Action<string> say)
{
    public const string RunFile = "run.json";

    public int Trained { get; private set; }

    public int Skipped { get; private set; }

    public static string RunDirectory(string outDirectory, RunSpec spec) => Path.Combine(outDirectory, "runs", spec.Slug);

    /// <summary>Runs every spec not yet done, in order; returns the results of every finished run in the directory.</summary>
    public ExperimentResults Run(IReadOnlyList<RunSpec> specs, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(specs);
        Directory.CreateDirectory(outDirectory);
        for (var i = 0; i < specs.Count; i++)
        {
            var spec = specs[i];
            var dir = RunDirectory(outDirectory, spec);
            var file = Path.Combine(dir, RunFile);
            if (File.Exists(file))
            {
                var done = JsonFiles.Read<RunRecord>(file);
                if (done.ProtocolKey != protocol.Key)
                {
                    throw new InvalidOperationException($"{file} was run under another protocol ({done.ProtocolKey}; this one is {protocol.Key}): use another --out.");
                }

                Skipped++;
                say($"[{i + 1}/{specs.Count}] {spec.Name} seed {spec.Seed}: done already ({file}), not rerun");
                continue;
            }

            say($"[{i + 1}/{specs.Count}] {spec.Name} seed {spec.Seed} (load {LoadAverage():F2})");
            var loadStart = LoadAverage();
            var record = train(spec, dir) with { ProtocolKey = protocol.Key, LoadStart = loadStart, LoadEnd = LoadAverage(), FinishedUtc = DateTimeOffset.UtcNow };
            JsonFiles.Write(file, record);
            Trained++;
            var results = WriteResults(config);
            var row = results.Runs.First(r => r.Name == spec.Name && r.Seed == spec.Seed && r.FilterRatio.Equals(spec.FilterRatio));
            say($"[{i + 1}/{specs.Count}] {spec.Name} seed {spec.Seed}: final {row.Final:P2}, steps to match {row.StepsToMatch?.ToString(CultureInfo.InvariantCulture) ?? "never"}, " +
                $"speed-up {Fmt(row.SpeedUp)}, compute {Fmt(row.ComputeSpeedUp)}, wall {Fmt(row.WallSpeedUp)}");
        }

        return WriteResults(config);
    }

    /// <summary>Reads every finished run of this protocol in the directory and writes results.json, report.md and the plot.</summary>
    public ExperimentResults WriteResults(ModelConfig config)
    {
        var records = FinishedRuns();
        var results = ExperimentAnalysis.Build(protocol, records, config);
        JsonFiles.Write(Path.Combine(outDirectory, "results.json"), results);
        var plot = records.Count == 0 ? null : ExperimentPlots.Write(outDirectory, results);
        ExperimentReport.Write(Path.Combine(outDirectory, "report.md"), results, plot);
        return results;
    }

    public List<RunRecord> FinishedRuns()
    {
        var runs = Path.Combine(outDirectory, "runs");
        if (!Directory.Exists(runs))
        {
            return [];
        }

        return Directory.GetDirectories(runs).Order(StringComparer.Ordinal)
            .Select(d => Path.Combine(d, RunFile))
            .Where(File.Exists)
            .Select(JsonFiles.Read<RunRecord>)
            .Where(r => r.ProtocolKey == protocol.Key)
            .ToList();
    }

    /// <summary>The 1-minute load average (/proc/loadavg), NaN where there is none.</summary>
    public static double LoadAverage()
    {
        try
        {
            var text = File.ReadAllText("/proc/loadavg");
            return double.Parse(text.Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return double.NaN;
        }
        catch (UnauthorizedAccessException)
        {
            return double.NaN;
        }
    }

    internal static string Fmt(double? speedUp) => speedUp is { } v ? v.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–";
}
