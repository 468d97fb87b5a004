using System.Collections.Concurrent;
using JestMesh.Protos.V1;
using RabbitMQ.Client;

namespace JestMesh.Selection;

/// <summary>One curation session: its settings, the last recorded sequence and when each batch was recorded.</summary>
public sealed class SessionState
{
    private readonly List<long> _recordedUnixSeconds = [];

    internal SessionState(string id, SessionOpen settings, bool learnerFree)
    {
        Id = id;
        Settings = settings;
        LearnerFree = learnerFree;
    }

    public string Id { get; }

    public SessionOpen Settings { get; }

    public bool LearnerFree { get; }

    public string Job => Settings.Job;

    /// <summary>Sequence of the last recorded batch (0 = none).</summary>
    public long LastSequence { get; private set; }

    /// <summary>Held by the one stream attached to the session.</summary>
    internal SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>Cancels the attached stream when a newer one takes the session over.</summary>
    internal CancellationTokenSource? Attached { get; set; }

    internal long RecordedAt(long sequence) => _recordedUnixSeconds[(int)(sequence - 1)];

    internal void Recorded(long sequence, long unixSeconds)
    {
        if (sequence != LastSequence + 1)
        {
            throw new InvalidOperationException($"session {Id}: batch {sequence} recorded after {LastSequence}.");
        }
        _recordedUnixSeconds.Add(unixSeconds);
        LastSequence = sequence;
    }
}

/// <summary>
/// Sessions and the record of every curated batch, kept in the <see cref="BatchLog"/> and indexed in
/// memory. At start the whole log is read back, so sessions survive a restart of the service.
/// </summary>
public sealed partial class SessionStore
{
    // Stream timestamp offsets resolve to chunks, written at second granularity: start replays
    // this much earlier than the record and skip what does not belong.
    private const long ReplayMarginSeconds = 5;

    private readonly BatchLog _log;
    private readonly ILogger<SessionStore> _logger;
    private readonly ConcurrentDictionary<string, SessionState> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _recordedSuperBatches = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SessionStore(BatchLog log, ILogger<SessionStore> logger)
    {
        _log = log;
        _logger = logger;
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
            var marker = Guid.NewGuid().ToString("N");
            await _log.AppendAsync(new SelectionLogRecord { Marker = marker }, $"marker/{marker}", cancellationToken);
            long batches = 0;
            await foreach (var record in _log.ReadAsync("first", cancellationToken))
            {
                if (record.KindCase == SelectionLogRecord.KindOneofCase.Marker && record.Marker == marker)
                {
                    break;
                }
                switch (record.KindCase)
                {
                    case SelectionLogRecord.KindOneofCase.Session:
                        var s = record.Session;
                        _sessions.TryAdd(s.SessionId, new SessionState(s.SessionId, s.Settings, s.LearnerFree));
                        break;
                    case SelectionLogRecord.KindOneofCase.Batch:
                        // A batch appended twice (a retried publish whose first confirm was lost) counts once.
                        if (_sessions.TryGetValue(record.Batch.SessionId, out var session) && record.Batch.Sequence == session.LastSequence + 1)
                        {
                            session.Recorded(record.Batch.Sequence, record.Batch.RecordedUnixMs / 1000);
                            _recordedSuperBatches.TryAdd(Key(record.Job, record.Batch.SuperBatchId), 0);
                            batches++;
                        }
                        break;
                    default:
                        break;
                }
            }
            LogLoaded(_logger, _log.Name, _sessions.Count, batches);
            _loaded.TrySetResult();
        }
        catch (Exception ex)
        {
            _loaded.TrySetException(ex);
            throw;
        }
    }

    public bool TryGet(string sessionId, out SessionState session) => _sessions.TryGetValue(sessionId, out session!);

    /// <summary>True when a curated batch of some session was already recorded from this super-batch.</summary>
    public bool IsRecorded(string job, string superBatchId) => _recordedSuperBatches.ContainsKey(Key(job, superBatchId));

    /// <summary>Records a new session, then returns it.</summary>
    public async Task<SessionState> CreateAsync(SessionOpen settings, bool learnerFree, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var id = Guid.NewGuid().ToString("N");
        var stored = settings.Clone();
        stored.Cursor = 0;
        stored.SessionId = "";
        await _log.AppendAsync(new SelectionLogRecord
        {
            Job = settings.Job,
            Session = new SessionRecord { SessionId = id, Settings = stored, LearnerFree = learnerFree, CreatedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() },
        }, $"session/{id}", cancellationToken);
        var session = new SessionState(id, stored, learnerFree);
        _sessions[id] = session;
        return session;
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
        _recordedSuperBatches.TryAdd(Key(session.Job, batch.SuperBatchId), 0);
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
        await foreach (var record in _log.ReadAsync(from, cancellationToken))
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

    private static string Key(string job, string superBatchId) => job + "\n" + superBatchId;

    [LoggerMessage(Level = LogLevel.Information, Message = "Batch log {Stream} read back: {Sessions} sessions, {Batches} batches")]
    private static partial void LogLoaded(ILogger logger, string stream, int sessions, long batches);
}
