namespace JestMesh.Curation;

/// <summary>Source of the score matrix S of one super-batch; large sources never materialise it.</summary>
public interface IScoreSource
{
    /// <summary>N: examples in the super-batch.</summary>
    int Count { get; }

    SelectionPolicy Policy { get; }

    /// <summary>True when s(𝔅) = Σ_{i,j∈𝔅} S_ij (sigmoid, per-example, dense); false for softmax (conditional scores).</summary>
    bool IsPairwiseAdditive { get; }

    /// <summary>Starts one selection: allocates every buffer the selection needs, for chunks of at most <paramref name="chunkSize"/> examples.</summary>
    IConditionalScores Start(int chunkSize);
}

/// <summary>Per-selection state: the conditional score Δ(c|𝒮) of each candidate given the examples selected so far.</summary>
public interface IConditionalScores
{
    /// <summary>Writes Δ(c|∅) for every example (S_cc for pairwise sources) into <paramref name="scores"/> (length N).</summary>
    void Initialize(Span<double> scores);

    /// <summary>Adds <paramref name="added"/> to 𝒮 and updates <c>scores[c]</c> to Δ(c|𝒮) for every c in <paramref name="candidates"/> (disjoint from 𝒮).</summary>
    /// <remarks>Entries of <paramref name="scores"/> for <paramref name="added"/> must still hold their Δ(c|𝒮) from before this call.</remarks>
    void Add(ReadOnlySpan<int> added, ReadOnlySpan<int> candidates, Span<double> scores);

    /// <summary>s(𝒮) of everything added so far, without gain.</summary>
    double SelectedScore { get; }
}
