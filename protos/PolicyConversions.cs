using JestMesh.Curation;

namespace JestMesh.Protos.V1;

/// <summary>The wire enums ↔ the curation library's vocabulary; the only place that maps them.</summary>
public static class PolicyConversions
{
    /// <summary>The selection policy of a wire <see cref="Policy"/>; false for POLICY_UNSPECIFIED and unknown values.</summary>
    public static bool TryToSelectionPolicy(this Policy policy, out SelectionPolicy selection)
    {
        switch (policy)
        {
            case Policy.Learnability: selection = SelectionPolicy.Learnability; return true;
            case Policy.HardLearner: selection = SelectionPolicy.HardLearner; return true;
            case Policy.EasyReference: selection = SelectionPolicy.EasyReference; return true;
            case Policy.Uniform: selection = SelectionPolicy.Uniform; return true;
            default: selection = default; return false;
        }
    }

    /// <summary>The selection policy of a wire <see cref="Policy"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">POLICY_UNSPECIFIED or a value this version does not know.</exception>
    public static SelectionPolicy ToSelectionPolicy(this Policy policy) =>
        policy.TryToSelectionPolicy(out var selection)
            ? selection
            : throw new ArgumentOutOfRangeException(nameof(policy), policy, "no selection policy for it.");

    /// <summary>The wire value of a selection policy.</summary>
    public static Policy ToWire(this SelectionPolicy policy) => policy switch
    {
        SelectionPolicy.Learnability => Policy.Learnability,
        SelectionPolicy.HardLearner => Policy.HardLearner,
        SelectionPolicy.EasyReference => Policy.EasyReference,
        SelectionPolicy.Uniform => Policy.Uniform,
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "not a selection policy."),
    };

    /// <summary>The policy's name as the CLI and reports spell it ("learnability", "easy-reference", ...).</summary>
    public static string Name(this Policy policy) => Policies.Name(policy.ToSelectionPolicy());
}
