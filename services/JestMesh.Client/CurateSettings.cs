using JestMesh.Protos.V1;

namespace JestMesh.Client;

/// <summary>What a Curate session curates, and how the client keeps it going.</summary>
public sealed record CurateSettings
{
    public required string Job { get; init; }

    public required string ApiKey { get; init; }

    public Policy Policy { get; init; } = Policy.Learnability;

    public double FilterRatio { get; init; } = 0.8;

    public int Chunks { get; init; } = 16;

    public double Gain { get; init; } = 1;

    public ulong Seed { get; init; }

    public bool Greedy { get; init; }

    public LossKind Loss { get; init; } = LossKind.Sigmoid;

    /// <summary>
    /// 0: exact JEST (each candidate scored by the learner as it is after the previous step). 1: score
    /// the next candidate before training on the current batch, so Selection works while the learner
    /// trains (the scores are one step stale).
    /// </summary>
    public int ScoreAhead { get; init; }

    /// <summary>First and largest delay between reconnects (exponential backoff with jitter).</summary>
    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The session's open request, resuming <paramref name="sessionId"/> after <paramref name="cursor"/> when given.</summary>
    public SessionOpen ToOpen(string sessionId, long cursor) => new()
    {
        Job = Job,
        Policy = Policy,
        FilterRatio = FilterRatio,
        Chunks = Chunks,
        Gain = Gain,
        Seed = Seed,
        Greedy = Greedy,
        Loss = Loss,
        SessionId = sessionId,
        Cursor = cursor,
    };
}

/// <summary>The caller's side of a Curate session: its learner scores candidates and trains on curated batches.</summary>
public interface ICurateLearner
{
    /// <summary>Batches the caller still wants; the session ends when it reaches 0.</summary>
    long Remaining { get; }

    /// <summary>A new session was opened: persist its id before training on it, so a crash resumes it.</summary>
    void SessionOpened(string sessionId);

    /// <summary>The learner's no-grad scores of <paramref name="candidate"/> (synchronous: tensor work never spans an await).</summary>
    LearnerScores Score(Candidate candidate);

    /// <summary>
    /// Trains on <paramref name="batch"/>, the next in sequence (never a gap or a repeat). When this
    /// returns the batch is consumed: the client acks it and advances its cursor, and the caller's
    /// checkpoint should record <c>batch.Sequence</c> as its cursor.
    /// </summary>
    void Train(CuratedBatch batch);
}
