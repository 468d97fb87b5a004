using System.Text.Json.Serialization;

namespace JestMesh.Cli.Demo;

/// <summary>results.json of a demo (issue 6's schema); report.md and the plots are written from the same object.</summary>
internal sealed record DemoResults(
    [property: JsonPropertyName("runs")] IReadOnlyList<RunResult> Runs,
    [property: JsonPropertyName("accounting")] Accounting Accounting,
    [property: JsonPropertyName("stages")] StageReport Stages);

/// <summary>One run's line of results.json.</summary>
internal sealed record RunResult(
    [property: JsonPropertyName("policy")] string Policy,
    [property: JsonPropertyName("filter_ratio")] double FilterRatio,
    [property: JsonPropertyName("independent")] bool Independent,
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("batch_size")] int BatchSize,
    [property: JsonPropertyName("eval")] IReadOnlyList<EvalJson> Eval,
    [property: JsonPropertyName("final_zero_shot_acc")] double FinalZeroShotAcc,
    [property: JsonPropertyName("steps_to_match_uniform")] int? StepsToMatchUniform,
    [property: JsonPropertyName("compute_per_step_rel")] double ComputePerStepRel,
    [property: JsonPropertyName("wall_per_step_ms")] double? WallPerStepMs,
    [property: JsonPropertyName("swapped_share_selected")] double? SwappedShareSelected)
{
    [JsonIgnore]
    public string Name => RunNames.Of(Policy, Independent, FilterRatio);

    /// <summary>T / steps_to_match_uniform (null when the run never reaches uniform's final accuracy).</summary>
    [JsonIgnore]
    public double? SpeedUp => StepsToMatchUniform is { } s ? (double)Steps / s : null;

    /// <summary>The speed-up divided by the per-step cost ratio (JEST.md §A.4).</summary>
    [JsonIgnore]
    public double? ComputeSpeedUp => SpeedUp / ComputePerStepRel;
}

/// <summary>One evaluation as written to results.json.</summary>
internal sealed record EvalJson(
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("zero_shot_acc")] double ZeroShotAcc,
    [property: JsonPropertyName("r_at_1")] double RAt1);

/// <summary>Where every produced example ended up, summed over the runs (counts of examples).</summary>
internal sealed record Accounting(
    [property: JsonPropertyName("produced")] long Produced,
    [property: JsonPropertyName("trained")] long Trained,
    [property: JsonPropertyName("filtered")] long Filtered,
    [property: JsonPropertyName("dead_lettered")] long DeadLettered)
{
    [JsonIgnore]
    public bool Balances => Produced == Trained + Filtered + DeadLettered;
}

/// <summary>Pipeline timings: per span name from the traces, the selection latency and the trainer's data stall.</summary>
internal sealed record StageReport(
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("spans")] IReadOnlyList<StageTiming> Spans,
    [property: JsonPropertyName("selection_latency_ms")] LatencySummary? SelectionLatencyMs,
    [property: JsonPropertyName("trainer_stall")] IReadOnlyList<RunStall> TrainerStall);

/// <summary>Durations of one kind of span.</summary>
internal sealed record StageTiming(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("count")] int Count,
    [property: JsonPropertyName("mean_ms")] double MeanMs,
    [property: JsonPropertyName("p50_ms")] double P50Ms,
    [property: JsonPropertyName("p95_ms")] double P95Ms,
    [property: JsonPropertyName("total_s")] double TotalS);

/// <summary>Summary of a latency sample.</summary>
internal sealed record LatencySummary(
    [property: JsonPropertyName("count")] int Count,
    [property: JsonPropertyName("mean")] double Mean,
    [property: JsonPropertyName("p50")] double P50,
    [property: JsonPropertyName("p95")] double P95,
    [property: JsonPropertyName("max")] double Max);

/// <summary>
/// Where a run's trainer time went: the share of its wall time spent waiting for data, and (when measured) the
/// seconds of wall time, of waiting for data, of the learner's own work (scoring + training) and of evaluation.
/// The learner's time per step compares runs whatever their data waited on (e.g. the first run on a cold Scoring).
/// </summary>
internal sealed record RunStall(
    [property: JsonPropertyName("run")] string Run,
    [property: JsonPropertyName("share")] double Share)
{
    [JsonPropertyName("wall_s")]
    public double? WallS { get; init; }

    [JsonPropertyName("wait_s")]
    public double? WaitS { get; init; }

    [JsonPropertyName("learner_s")]
    public double? LearnerS { get; init; }

    [JsonPropertyName("eval_s")]
    public double? EvalS { get; init; }

    [JsonPropertyName("learner_ms_per_step")]
    public double? LearnerMsPerStep { get; init; }
}
