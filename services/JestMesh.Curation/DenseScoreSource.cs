namespace JestMesh.Curation;

/// <summary>An explicit N×N score matrix (row-major). O(N²) memory: for small super-batches, tests and scores computed elsewhere.</summary>
public sealed class DenseScoreSource : IScoreSource
{
    private readonly float[] _matrix;

    internal DenseScoreSource(SelectionPolicy policy, float[] matrix, int count)
    {
        Policy = policy;
        _matrix = matrix;
        Count = count;
    }

    public int Count { get; }

    public SelectionPolicy Policy { get; }

    public bool IsPairwiseAdditive => true;

    public IConditionalScores Start(int chunkSize) => new State(this);

    private sealed class State(DenseScoreSource source) : IConditionalScores
    {
        public double SelectedScore { get; private set; }

        public void Initialize(Span<double> scores)
        {
            int n = source.Count;
            for (int c = 0; c < n; c++)
            {
                scores[c] = source._matrix[(c * n) + c];
            }

            SelectedScore = 0;
        }

        public void Add(ReadOnlySpan<int> added, ReadOnlySpan<int> candidates, Span<double> scores)
        {
            int n = source.Count;
            var s = source._matrix;
            double within = 0;
            foreach (int c in added)
            {
                SelectedScore += scores[c];
                foreach (int k in added)
                {
                    if (k != c)
                    {
                        within += s[(c * n) + k];
                    }
                }
            }

            SelectedScore += within;
            foreach (int c in candidates)
            {
                double acc = 0;
                foreach (int k in added)
                {
                    acc += s[(c * n) + k] + s[(k * n) + c];
                }

                scores[c] += acc;
            }
        }
    }
}
