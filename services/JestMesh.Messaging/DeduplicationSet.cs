namespace JestMesh.Messaging;

/// <summary>
/// A bounded set of processed message ids (oldest forgotten first). At-least-once delivery plus this
/// set makes a redelivered or republished message have no second effect within its window.
/// </summary>
public sealed class DeduplicationSet
{
    private readonly int _capacity;
    private readonly HashSet<string> _ids;
    private readonly Queue<string> _order;
    private readonly Lock _gate = new();

    public DeduplicationSet(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        _ids = new HashSet<string>(StringComparer.Ordinal);
        _order = new Queue<string>();
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _ids.Count;
            }
        }
    }

    public bool Contains(string id)
    {
        lock (_gate)
        {
            return _ids.Contains(id);
        }
    }

    /// <summary>Remembers <paramref name="id"/>; false when it was already there.</summary>
    public bool Add(string id)
    {
        lock (_gate)
        {
            if (!_ids.Add(id))
            {
                return false;
            }
            _order.Enqueue(id);
            if (_order.Count > _capacity)
            {
                _ids.Remove(_order.Dequeue());
            }
            return true;
        }
    }
}
