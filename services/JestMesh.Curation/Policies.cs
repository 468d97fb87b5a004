namespace JestMesh.Curation;

/// <summary>
/// The one home of the policy vocabulary: the names users type and reports print, and what each
/// policy needs. Every command, host and report goes through this class.
/// </summary>
public static class Policies
{
    public const string Learnability = "learnability";
    public const string HardLearner = "hard-learner";
    public const string EasyReference = "easy-reference";
    public const string Uniform = "uniform";

    /// <summary>Suffix of a run that selects with one chunk (independent selection).</summary>
    public const string IndependentSuffix = "-independent";

    /// <summary>Run name of learnability with joint selection: the method itself.</summary>
    public const string Jest = "jest";

    /// <summary>Every policy name, in the order help texts list them.</summary>
    public static IReadOnlyList<string> Names { get; } = [Learnability, HardLearner, EasyReference, Uniform];

    /// <summary>The user-facing name of <paramref name="policy"/>.</summary>
    public static string Name(SelectionPolicy policy) => policy switch
    {
        SelectionPolicy.Learnability => Learnability,
        SelectionPolicy.HardLearner => HardLearner,
        SelectionPolicy.EasyReference => EasyReference,
        SelectionPolicy.Uniform => Uniform,
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "not a selection policy."),
    };

    /// <summary>Parses a policy name; false for anything else (case-sensitive, as typed in the docs).</summary>
    public static bool TryParse(string? name, out SelectionPolicy policy)
    {
        switch (name)
        {
            case Learnability: policy = SelectionPolicy.Learnability; return true;
            case HardLearner: policy = SelectionPolicy.HardLearner; return true;
            case EasyReference: policy = SelectionPolicy.EasyReference; return true;
            case Uniform: policy = SelectionPolicy.Uniform; return true;
            default: policy = default; return false;
        }
    }

    /// <summary>Parses a policy name or throws an <see cref="ArgumentException"/> that lists the valid ones.</summary>
    public static SelectionPolicy Parse(string? name, string what = "policy") =>
        TryParse(name, out var policy)
            ? policy
            : throw new ArgumentException($"{what} '{name}' is not one of {string.Join(", ", Names)}.");

    /// <summary>
    /// Name of a run: "jest" for learnability with joint selection, "P-independent" for one chunk,
    /// the policy name otherwise (uniform is never independent: it has no scores to chunk).
    /// </summary>
    public static string RunName(SelectionPolicy policy, bool independent) => policy switch
    {
        SelectionPolicy.Uniform => Uniform,
        SelectionPolicy.Learnability when !independent => Jest,
        _ => Name(policy) + (independent ? IndependentSuffix : ""),
    };

    /// <summary>Name of a run in reports and legends: "JEST" for learnability with joint selection, <see cref="RunName"/> otherwise.</summary>
    public static string DisplayName(SelectionPolicy policy, bool independent) =>
        policy == SelectionPolicy.Learnability && !independent ? "JEST" : RunName(policy, independent);

    /// <summary>Parses a run name ("jest", "learnability-independent", "uniform", ...) into policy and independence.</summary>
    public static bool TryParseRun(string? run, out SelectionPolicy policy, out bool independent)
    {
        independent = false;
        if (run == Jest)
        {
            policy = SelectionPolicy.Learnability;
            return true;
        }
        if (run is not null && run.EndsWith(IndependentSuffix, StringComparison.Ordinal))
        {
            independent = true;
            return TryParse(run[..^IndependentSuffix.Length], out policy) && policy != SelectionPolicy.Uniform;
        }
        return TryParse(run, out policy);
    }

    /// <summary>True when the policy needs the learner's scores of every candidate (a no-grad pass per step).</summary>
    public static bool NeedsLearner(SelectionPolicy policy) => policy is SelectionPolicy.Learnability or SelectionPolicy.HardLearner;

    /// <summary>True when the policy needs the reference model's scores.</summary>
    public static bool NeedsReference(SelectionPolicy policy) => policy is SelectionPolicy.Learnability or SelectionPolicy.EasyReference;
}
