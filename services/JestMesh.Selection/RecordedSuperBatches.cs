using System.Collections.Concurrent;

namespace JestMesh.Selection;

/// <summary>
/// The super-batches some session already made a batch from, so that a redelivery has no second
/// effect. Kept as long as the batch log keeps their records (Selection:LogMaxAge) and no longer: a
/// restart rebuilds the set from the log, so what the log forgot this forgets too, and memory stays
/// bounded by the log's retention instead of growing with every batch for as long as the process lives.
/// </summary>
public sealed class RecordedSuperBatches(TimeSpan retention)
{
    private readonly ConcurrentDictionary<string, long> _recorded = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(long UnixSeconds, string Key)> _byTime = new();
    private readonly Lock _pruning = new();

    /// <summary>Super-batches remembered now.</summary>
    public int Count => _recorded.Count;

    public bool Contains(string job, string superBatchId) => _recorded.ContainsKey(Key(job, superBatchId));

    /// <summary>Remembers a super-batch recorded at <paramref name="unixSeconds"/>, then forgets those older than the retention before <paramref name="nowUnixSeconds"/>.</summary>
    public void Add(string job, string superBatchId, long unixSeconds, long nowUnixSeconds)
    {
        var key = Key(job, superBatchId);
        if (_recorded.TryAdd(key, unixSeconds))
        {
            _byTime.Enqueue((unixSeconds, key));
        }
        Prune(nowUnixSeconds);
    }

    private void Prune(long nowUnixSeconds)
    {
        var horizon = nowUnixSeconds - (long)retention.TotalSeconds;
        lock (_pruning)
        {
            // Records arrive in time order (the log's, then live ones), so the oldest is at the head.
            while (_byTime.TryPeek(out var head) && head.UnixSeconds < horizon && _byTime.TryDequeue(out head))
            {
                _recorded.TryRemove(new KeyValuePair<string, long>(head.Key, head.UnixSeconds));
            }
        }
    }

    /// <summary>Selection:LogMaxAge (RabbitMQ's x-max-age: a number and one of Y, M, D, h, m, s) as a duration.</summary>
    public static TimeSpan ParseMaxAge(string maxAge)
    {
        ArgumentException.ThrowIfNullOrEmpty(maxAge);
        var amount = long.Parse(maxAge.AsSpan(0, maxAge.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture);
        return maxAge[^1] switch
        {
            'Y' => TimeSpan.FromDays(365 * amount),
            'M' => TimeSpan.FromDays(30 * amount),
            'D' => TimeSpan.FromDays(amount),
            'h' => TimeSpan.FromHours(amount),
            'm' => TimeSpan.FromMinutes(amount),
            's' => TimeSpan.FromSeconds(amount),
            _ => throw new FormatException($"Selection:LogMaxAge '{maxAge}' must end in Y, M, D, h, m or s."),
        };
    }

    private static string Key(string job, string superBatchId) => job + "\n" + superBatchId;
}
