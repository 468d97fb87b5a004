using System.Text.Json.Serialization;

namespace JestMesh.Models;

/// <summary>One evaluation of a model on the test set, as every JSON file of JestMesh writes it.</summary>
public sealed record EvalPoint(
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("zero_shot_acc")] double ZeroShotAcc,
    [property: JsonPropertyName("r_at_1")] double RAt1,
    [property: JsonPropertyName("r_at_1_exact"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? RAt1Exact = null)
{
    /// <summary>The evaluation of <paramref name="result"/> at <paramref name="step"/>.</summary>
    public static EvalPoint At(int step, EvalResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new EvalPoint(step, result.ZeroShotAccuracy, result.RecallAt1, result.RecallAt1Exact);
    }
}
