using System.Collections.Concurrent;
using JestMesh.Protos.V1;
using RabbitMQ.Client;

namespace JestMesh.Selection;

/// <summary>
/// One curation session: its settings, the last recorded sequence, and when its recent batches were
/// recorded (to find them in the batch log). What it keeps is bounded: a session that recorded a
/// million batches holds the same few kilobytes as one that recorded ten.
/// </summary>
public sealed class SessionState
{
    /// <summary>Record times kept per session; older cursors replay from the session's start.</summary>
    internal const int RecentRecordTimes = 256;

    private readonly Lock _recording = new();
    private long[]? _recent;
    private CancellationTokenSource? _attached;

    internal SessionState(string id, SessionOpen settings, bool learnerFree, long createdUnixSeconds)
    {
        Id = id;
        Settings = settings;
        LearnerFree = learnerFree;
        CreatedUnixSeconds = createdUnixSeconds;
    }

    public string Id { get; }

    public SessionOpen Settings { get; }

    public bool LearnerFree { get; }

    public string Job => Settings.Job;

    /// <summary>When the session was opened, Unix seconds.</summary>
    public long CreatedUnixSeconds { get; }

    /// <summary>Sequence of the last recorded batch (0 = none).</summary>
    public long LastSequence { get => Volatile.Read(ref _lastSequence); private set => Volatile.Write(ref _lastSequence, value); }

    private long _lastSequence;

    /// <summary>Held by the one stream attached to the session (only <see cref="SessionStore.AttachAsync"/> takes it).</summary>
    internal SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>
    /// Unix seconds at which batch <paramref name="sequence"/> was recorded, or the session's start
    /// for a batch older than the recent ones kept: replay may read a little more of the log, never less.
    /// </summary>
    internal long RecordedAt(long sequence) =>
        sequence > LastSequence - RecentRecordTimes && sequence >= 1 && sequence <= LastSequence
            ? _recent![(int)((sequence - 1) % RecentRecordTimes)]
            : CreatedUnixSeconds;

    /// <summary>Advances the session by the batch this replica just recorded (a log reader may have applied it first).</summary>
    internal void Recorded(long sequence, long unixSeconds)
    {
        lock (_recording)
        {
            if (sequence == LastSequence)
            {
                return;
            }
            if (!Advance(sequence, unixSeconds))
            {
                throw new InvalidOperationException($"session {Id}: batch {sequence} recorded after {LastSequence}.");
            }
        }
    }

    /// <summary>Advances the session by a batch read from the log when it is the next one; false for any other (a repeat, an old one).</summary>
    internal bool TryRecord(long sequence, long unixSeconds)
    {
        lock (_recording)
        {
            return Advance(sequence, unixSeconds);
        }
    }

    private bool Advance(long sequence, long unixSeconds)
    {
        if (sequence != LastSequence + 1)
        {
            return false;
        }
        // Allocated with the first batch: the many sessions that never record one keep nothing.
        _recent ??= new long[RecentRecordTimes];
        _recent[(int)((sequence - 1) % RecentRecordTimes)] = unixSeconds;
        LastSequence = sequence;
        return true;
    }

    /// <summary>Makes <paramref name="attached"/> the session's stream and returns the one it replaces.</summary>
    internal CancellationTokenSource? Attach(CancellationTokenSource attached)
    {
        lock (Gate)
        {
            var previous = _attached;
            _attached = attached;
            return previous;
        }
    }

    /// <summary>Forgets <paramref name="attached"/> if it is still the session's stream.</summary>
    internal void Detach(CancellationTokenSource attached)
    {
        lock (Gate)
        {
            if (ReferenceEquals(_attached, attached))
            {
                _attached = null;
            }
        }
    }
}

/// <summary>The one stream attached to a session, from <see cref="SessionStore.AttachAsync"/>; disposing it frees the session.</summary>
public sealed class SessionLease : IAsyncDisposable
{
    private readonly CancellationTokenSource _cts;
    private int _disposed;

    internal SessionLease(SessionState session, CancellationTokenSource cts)
    {
        Session = session;
        _cts = cts;
    }

    public SessionState Session { get; }

    /// <summary>Cancelled when the client goes away, the service stops, or a newer stream takes the session over.</summary>
    public CancellationToken Token => _cts.Token;

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Session.Detach(_cts);
            Session.Gate.Release();
            _cts.Dispose();
        }
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Sessions and the record of every curated batch, kept in the <see cref="BatchLog"/> and indexed in
/// memory. At start the whole log is read back, so sessions survive a restart of the service; a
/// replica that takes a job over from another reads on from where it stopped (<see cref="CatchUpAsync"/>).
/// </summary>
public sealed partial class SessionStore : IDisposable
{
    // Stream timestamp offsets resolve to chunks, written at second granularity: start replays
    // this much earlier than the record and skip what does not belong.
    private const long ReplayMarginSeconds = 5;

    private readonly BatchLog _log;
    private readonly ILogger<SessionStore> _logger;
    private readonly ConcurrentDictionary<string, SessionState> _sessions = new(StringComparer.Ordinal);
    private readonly RecordedSuperBatches _recordedSuperBatches;
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _catchingUp = new(1, 1);
    private long? _nextOffset;

    public SessionStore(BatchLog log, ILogger<SessionStore> logger)
    {
        _log = log;
        _logger = logger;
        _recordedSuperBatches = new RecordedSuperBatches(log.MaxAge);
    }

    public bool IsLoaded => _loaded.Task.IsCompletedSuccessfully;

    /// <summary>Completes when the log has been read back (RPCs wait for it).</summary>
    public Task Loaded => _loaded.Task;

    /// <summary>Reads the log from its start up to a marker written now, rebuilding sessions and the recorded super-batch set.</summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _log.DeclareAsync(cancellationToken);
            var (sessions, batches) = await CatchUpAsync(cancellationToken);
            LogLoaded(_logger, _log.Name, sessions, batches);
            _loaded.TrySetResult();
        }
        catch (Exception ex)
        {
            _loaded.TrySetException(ex);
            throw;
        }
    }

    /// <summary>
    /// Reads what the log gained since this replica last read it, up to a marker appended now, so
    /// every record confirmed before this call is applied when it returns: the records of another
    /// replica that served a job until it died, before this one serves the job's sessions.
    /// Returns the sessions and batches it added.
    /// </summary>
    public async Task<(int Sessions, long Batches)> CatchUpAsync(CancellationToken cancellationToken)
    {
        await _catchingUp.WaitAsync(cancellationToken);
        try
        {
            var marker = Guid.NewGuid().ToString("N");
            await _log.AppendAsync(new SelectionLogRecord { Marker = marker }, $"marker/{marker}", cancellationToken);
            var sessions = 0;
            long batches = 0;
            await foreach (var (offset, record) in _log.ReadAsync(_nextOffset is { } next ? next : "first", cancellationToken))
            {
                if (offset >= 0)
                {
                    _nextOffset = offset + 1;
                }
                if (record.KindCase == SelectionLogRecord.KindOneofCase.Marker && record.Marker == marker)
                {
                    break;
                }
                switch (record.KindCase)
                {
                    case SelectionLogRecord.KindOneofCase.Session:
                        var s = record.Session;
                        if (_sessions.TryAdd(s.SessionId, new SessionState(s.SessionId, s.Settings, s.LearnerFree, s.CreatedUnixMs / 1000)))
                        {
                            sessions++;
                        }
                        break;
                    case SelectionLogRecord.KindOneofCase.Batch:
                        // A batch appended twice (a retried publish whose first confirm was lost), or one
                        // this replica recorded itself, counts once.
                        if (_sessions.TryGetValue(record.Batch.SessionId, out var session) && session.TryRecord(record.Batch.Sequence, record.Batch.RecordedUnixMs / 1000))
                        {
                            _recordedSuperBatches.Add(record.Job, record.Batch.SuperBatchId, record.Batch.RecordedUnixMs / 1000, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
                            batches++;
                        }
                        break;
                    default:
                        break;
                }
            }
            return (sessions, batches);
        }
        finally
        {
            _catchingUp.Release();
        }
    }

    public bool TryGet(string sessionId, out SessionState session) => _sessions.TryGetValue(sessionId, out session!);

    /// <summary>True when a curated batch of some session was already recorded from this super-batch.</summary>
    public bool IsRecorded(string job, string superBatchId) => _recordedSuperBatches.Contains(job, superBatchId);

    /// <summary>Records a new session, then returns it.</summary>
    public async Task<SessionState> CreateAsync(SessionOpen settings, bool learnerFree, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var id = Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var stored = settings.Clone();
        stored.Cursor = 0;
        stored.SessionId = "";
        await _log.AppendAsync(new SelectionLogRecord
        {
            Job = settings.Job,
            Session = new SessionRecord { SessionId = id, Settings = stored, LearnerFree = learnerFree, CreatedUnixMs = created },
        }, $"session/{id}", cancellationToken);
        var session = new SessionState(id, stored, learnerFree, created / 1000);
        _sessions[id] = session;
        return session;
    }

    /// <summary>
    /// Attaches a stream to <paramref name="session"/>: a stream already attached (a trainer that
    /// restarted before its old stream was noticed dead) is cancelled and waited for. The lease's
    /// token is cancelled by <paramref name="cancellationToken"/>, <paramref name="stopping"/> or the
    /// next stream that attaches.
    /// </summary>
    public async Task<SessionLease> AttachAsync(SessionState session, CancellationToken cancellationToken, CancellationToken stopping)
    {
        ArgumentNullException.ThrowIfNull(session);
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        if (session.Attach(cts) is { } previous)
        {
            try
            {
                await previous.CancelAsync();
            }
            catch (ObjectDisposedException)
            {
                // It ended by itself meanwhile.
            }
        }
        try
        {
            await session.Gate.WaitAsync(cancellationToken);
        }
        catch
        {
            session.Detach(cts);
            cts.Dispose();
            throw;
        }
        return new SessionLease(session, cts);
    }

    /// <summary>Appends <paramref name="batch"/> (confirmed) and advances the session; call with the session's gate held.</summary>
    public async Task RecordAsync(SessionState session, CuratedBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(batch);
        batch.RecordedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        await _log.AppendAsync(new SelectionLogRecord { Job = session.Job, Batch = batch }, $"batch/{session.Id}/{batch.Sequence}", cancellationToken);
        SelectionTelemetry.RecordLatency.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        session.Recorded(batch.Sequence, batch.RecordedUnixMs / 1000);
        _recordedSuperBatches.Add(session.Job, batch.SuperBatchId, batch.RecordedUnixMs / 1000, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        SelectionTelemetry.Batches.Add(1);
    }

    /// <summary>The recorded batches of <paramref name="session"/> after <paramref name="cursor"/>, in order, up to its last one.</summary>
    public async IAsyncEnumerable<CuratedBatch> ReplayAsync(SessionState session, long cursor, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(session);
        var last = session.LastSequence;
        if (cursor >= last)
        {
            yield break;
        }
        var from = new AmqpTimestamp(Math.Max(0, session.RecordedAt(cursor + 1) - ReplayMarginSeconds));
        var expected = cursor + 1;
        await foreach (var (_, record) in _log.ReadAsync(from, cancellationToken))
        {
            if (record.KindCase != SelectionLogRecord.KindOneofCase.Batch || record.Batch.SessionId != session.Id || record.Batch.Sequence != expected)
            {
                continue;
            }
            var batch = record.Batch;
            batch.Replayed = true;
            SelectionTelemetry.Replayed.Add(1);
            yield return batch;
            if (expected++ == last)
            {
                yield break;
            }
        }
    }

    public void Dispose() => _catchingUp.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Batch log {Stream} read back: {Sessions} sessions, {Batches} batches")]
    private static partial void LogLoaded(ILogger logger, string stream, int sessions, long batches);
}
