namespace JestMesh.Curation;

/// <summary>No scores: the sampler draws a uniform random b-subset of <see cref="Count"/> examples.</summary>
public sealed class UniformSource : IScoreSource
{
    internal UniformSource(int count) => Count = count;

    public int Count { get; }

    public SelectionPolicy Policy => SelectionPolicy.Uniform;

    public bool IsPairwiseAdditive => true;

    public IConditionalScores Start(int chunkSize) => new State();

    private sealed class State : IConditionalScores
    {
        public double SelectedScore => double.NaN;

        public void Initialize(Span<double> scores) => scores.Clear();

        public void Add(ReadOnlySpan<int> added, ReadOnlySpan<int> candidates, Span<double> scores)
        {
        }
    }
}
