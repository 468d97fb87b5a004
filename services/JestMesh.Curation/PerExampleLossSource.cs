namespace JestMesh.Curation;

/// <summary>Per-example (classification) losses: S is diagonal, so joint selection reduces to independent selection on the per-example score.</summary>
public sealed class PerExampleLossSource : IScoreSource
{
    private readonly double[] _diagonal;

    internal PerExampleLossSource(SelectionPolicy policy, double[] diagonal)
    {
        Policy = policy;
        _diagonal = diagonal;
    }

    public int Count => _diagonal.Length;

    public SelectionPolicy Policy { get; }

    public bool IsPairwiseAdditive => true;

    /// <summary>The diagonal S_cc the sampler draws from.</summary>
    public ReadOnlySpan<double> Diagonal => _diagonal;

    public IConditionalScores Start(int chunkSize) => new State(_diagonal);

    private sealed class State(double[] diagonal) : IConditionalScores
    {
        public double SelectedScore { get; private set; }

        public void Initialize(Span<double> scores)
        {
            diagonal.CopyTo(scores);
            SelectedScore = 0;
        }

        // Off-diagonal entries are zero: Δ(c|𝒮) = S_cc whatever 𝒮 is.
        public void Add(ReadOnlySpan<int> added, ReadOnlySpan<int> candidates, Span<double> scores)
        {
            foreach (int c in added)
            {
                SelectedScore += diagonal[c];
            }
        }
    }
}
