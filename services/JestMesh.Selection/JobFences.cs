namespace JestMesh.Selection;

/// <summary>
/// The takeover markers of every job this replica has read, by stream offset: a batch whose fence
/// (its writer's takeover marker) is older than a takeover of its job that comes before the batch
/// in the log was written by a replica that had lost the job, and counts for no reader.
/// </summary>
internal sealed class JobFences
{
    private readonly Dictionary<string, List<long>> _takeovers = new(StringComparer.Ordinal);
    private readonly HashSet<string> _markers = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <summary>
    /// Adds the takeover <paramref name="marker"/> of <paramref name="job"/> at <paramref name="offset"/>
    /// (read in log order). A marker appended twice (a publish retried after its confirm was lost)
    /// is one takeover, at its first offset: the copy would otherwise fence its own holder's batches.
    /// </summary>
    public void Add(string job, long offset, string marker)
    {
        lock (_gate)
        {
            if (!_markers.Add(marker))
            {
                return;
            }
            if (!_takeovers.TryGetValue(job, out var offsets))
            {
                _takeovers[job] = offsets = [];
            }
            if (offsets.Count == 0 || offsets[^1] < offset)
            {
                offsets.Add(offset);
            }
        }
    }

    /// <summary>True when a batch of <paramref name="job"/> with <paramref name="fence"/> at <paramref name="offset"/> follows a newer takeover of the job.</summary>
    public bool IsStale(string job, long fence, long offset)
    {
        if (fence <= 0)
        {
            // Written before fences existed: as before, it counts.
            return false;
        }
        lock (_gate)
        {
            if (!_takeovers.TryGetValue(job, out var offsets))
            {
                return false;
            }
            // The first takeover after the writer's own.
            var next = offsets.BinarySearch(fence + 1);
            if (next < 0)
            {
                next = ~next;
            }
            return next < offsets.Count && offsets[next] < offset;
        }
    }
}
