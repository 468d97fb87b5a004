using JestMesh.Curation;
using JestMesh.Models;

namespace JestMesh.Cli.Experiment;

/// <summary>Builds results.json from finished runs: every reported figure is computed here, once.</summary>
internal static class ExperimentAnalysis
{
    public static ExperimentResults Build(ProtocolInfo protocol, IReadOnlyList<RunRecord> records, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        ArgumentNullException.ThrowIfNull(records);
        var uniformBySeed = records.Where(r => r.Policy == Policies.Uniform)
            .GroupBy(r => r.Seed)
            .ToDictionary(g => g.Key, g => g.OrderBy(r => Math.Abs(r.FilterRatio - 0.8)).First());
        var runs = new List<RunResult>();
        foreach (var r in records.OrderBy(r => r.Seed).ThenBy(r => Order(r.Spec())))
        {
            var spec = r.Spec();
            var final = ExperimentProtocol.Final(r.Eval);
            var perStep = ExperimentProtocol.ComputePerStepRel(spec.Policy, protocol.BatchSize, r.FilterRatio, r.ScoreResolution, config);
            int? match = null;
            double? finalMinus = null;
            double? speedUp = null, computeSpeedUp = null, wallSpeedUp = null;
            if (uniformBySeed.TryGetValue(r.Seed, out var uniform))
            {
                var target = ExperimentProtocol.Final(uniform.Eval);
                match = ExperimentProtocol.StepsToMatch(r.Eval, target);
                finalMinus = final - target;
                speedUp = ExperimentProtocol.SpeedUp(protocol.Steps, match);
                computeSpeedUp = ExperimentProtocol.ComputeSpeedUp(speedUp, perStep);
                wallSpeedUp = ExperimentProtocol.WallSpeedUp(uniform.StepWallMs, r.StepWallMs, match, protocol.Steps);
            }

            var scoringMs = r.LearnerScoringMsMean();
            var trainMs = r.TrainMsMean();
            var scoring = new ScoringCost(r.ScoreResolution, perStep, ModelCost.RelativeForward(config, r.ScoreResolution), scoringMs, trainMs,
                r.StepWallMs.Average(), scoringMs / trainMs);
            runs.Add(new RunResult
            {
                Name = spec.Name,
                Policy = r.Policy,
                Independent = r.Independent,
                FilterRatio = r.FilterRatio,
                Seed = r.Seed,
                Eval = r.Eval,
                Final = final,
                FinalMinusUniform = finalMinus,
                StepsToMatch = match,
                SpeedUp = speedUp,
                ComputeSpeedUp = computeSpeedUp,
                WallSpeedUp = wallSpeedUp,
                TimeSpeedUp = speedUp / scoring.MeasuredStepRelToTrain,
                Scoring = scoring,
                CheapVsExact = r.RankChecks.Count == 0 ? null : new RankSummary(r.RankChecks.Count,
                    r.RankChecks.Average(c => c.SpearmanLearnability), r.RankChecks.Average(c => c.SpearmanLearnerLoss), r.RankChecks.Average(c => c.TopBOverlap)),
                MeanSwappedShare = r.MeanSwappedShare,
                LoadStart = r.LoadStart,
                LoadEnd = r.LoadEnd,
                WallSeconds = r.WallSeconds,
                Services = r.Services,
            });
        }

        var summary = runs.GroupBy(r => (r.Policy, r.Independent, r.FilterRatio, r.Scoring.Resolution))
            .OrderBy(g => Order(new RunSpec(Policies.Parse(g.Key.Policy), g.Key.Independent, g.Key.FilterRatio, g.Key.Resolution, 0)))
            .ThenBy(g => g.Key.FilterRatio)
            .Select(g => Summarize(g.ToList()))
            .ToList();
        return new ExperimentResults(protocol, runs, summary);
    }

    private static SummaryRow Summarize(List<RunResult> runs)
    {
        var first = runs[0];
        var finals = runs.Select(r => r.Final).ToList();
        var diffs = runs.Where(r => r.FinalMinusUniform is not null).Select(r => r.FinalMinusUniform!.Value).ToList();
        return new SummaryRow
        {
            Name = first.Name + (first.Policy == Policies.Uniform ? "" : $" f={RunSpec.F(first.FilterRatio)}"),
            Policy = first.Policy,
            Independent = first.Independent,
            FilterRatio = first.FilterRatio,
            ScoreResolution = first.Scoring.Resolution,
            Seeds = runs.Count,
            FinalMean = finals.Average(),
            FinalCi95 = ExperimentProtocol.HalfWidth95(finals),
            FinalMinusUniformMean = diffs.Count == runs.Count ? diffs.Average() : null,
            FinalMinusUniformCi95 = diffs.Count == runs.Count ? ExperimentProtocol.HalfWidth95(diffs) : null,
            SpeedUpMean = MeanOfAll(runs.Select(r => r.SpeedUp)),
            ComputeSpeedUpMean = MeanOfAll(runs.Select(r => r.ComputeSpeedUp)),
            WallSpeedUpMean = MeanOfAll(runs.Select(r => r.WallSpeedUp)),
            TimeSpeedUpMean = MeanOfAll(runs.Select(r => r.TimeSpeedUp)),
            ComputePerStepRel = first.Scoring.ComputePerStepRel,
            SpearmanLearnabilityMean = runs.All(r => r.CheapVsExact is not null) ? runs.Average(r => r.CheapVsExact!.SpearmanLearnabilityMean) : null,
            PerSeed = new SortedDictionary<string, SeedFigures>(runs.ToDictionary(
                r => r.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
                r => new SeedFigures(r.Final, r.FinalMinusUniform, r.StepsToMatch, r.SpeedUp, r.ComputeSpeedUp, r.WallSpeedUp, r.TimeSpeedUp)), StringComparer.Ordinal),
        };
    }

    /// <summary>The mean when every seed has a value; null when one does not (a seed that never matched has no speed-up to average).</summary>
    public static double? MeanOfAll(IEnumerable<double?> values)
    {
        var list = values.ToList();
        return list.Count > 0 && list.All(v => v is not null) ? list.Average(v => v!.Value) : null;
    }

    private static int Order(RunSpec s) => s.Policy switch
    {
        SelectionPolicy.Uniform => 0,
        SelectionPolicy.Learnability when !s.Independent => s.ScoreResolution == ExperimentProtocol.FullResolution ? 1 : 2,
        SelectionPolicy.Learnability => 3,
        SelectionPolicy.EasyReference => 4,
        _ => 5,
    };
}
