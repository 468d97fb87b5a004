using System.Collections.Concurrent;
using JestMesh.Messaging;
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
    private readonly Lock _pinning = new();
    private long[]? _recent;
    private CancellationTokenSource? _attached;
    private int _pins;
    private bool _evicted;
    private long _idleSinceUnixMs;

    internal SessionState(string id, SessionOpen settings, bool learnerFree, long createdUnixSeconds)
    {
        Id = id;
        Settings = settings;
        LearnerFree = learnerFree;
        CreatedUnixSeconds = createdUnixSeconds;
        _idleSinceUnixMs = createdUnixSeconds * 1000;
    }

    /// <summary>A session as its record in the log opened it (no batch yet).</summary>
    internal static SessionState From(SessionRecord record) => new(record.SessionId, record.Settings, record.LearnerFree, record.CreatedUnixMs / 1000);

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
        lock (_pinning)
        {
            // A session read from the log has been idle since its last batch, not since the read.
            _idleSinceUnixMs = Math.Max(_idleSinceUnixMs, unixSeconds * 1000);
        }
        return true;
    }

    /// <summary>Keeps the session in memory while a stream opens or holds it; false once it was evicted (look it up again).</summary>
    internal bool TryPin()
    {
        lock (_pinning)
        {
            if (_evicted)
            {
                return false;
            }
            _pins++;
            return true;
        }
    }

    /// <summary>Ends a pin; the session is idle from <paramref name="nowUnixMs"/> when it was the last.</summary>
    internal void Unpin(long nowUnixMs)
    {
        lock (_pinning)
        {
            _pins--;
            _idleSinceUnixMs = Math.Max(_idleSinceUnixMs, nowUnixMs);
        }
    }

    /// <summary>Counts the session as busy until <paramref name="nowUnixMs"/> (it was just rebuilt for a stream).</summary>
    internal void Touch(long nowUnixMs)
    {
        lock (_pinning)
        {
            _idleSinceUnixMs = Math.Max(_idleSinceUnixMs, nowUnixMs);
        }
    }

    /// <summary>Marks the session evicted when nothing pins it and it has been idle since before <paramref name="idleBeforeUnixMs"/>.</summary>
    internal bool TryEvict(long idleBeforeUnixMs)
    {
        lock (_pinning)
        {
            if (_pins > 0 || _idleSinceUnixMs > idleBeforeUnixMs)
            {
                return false;
            }
            _evicted = true;
            return true;
        }
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
            Session.Unpin(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            _cts.Dispose();
        }
        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// Sessions and the record of every curated batch, kept in the <see cref="BatchLog"/> and indexed in
/// memory. At start the whole log is read back, so sessions survive a restart of the service; a
/// replica that takes a job over from another reads on from where it stopped (<see cref="CatchUpAsync"/>).
/// A session idle for Selection:SessionIdleTimeout is dropped from memory (<see cref="EvictIdle"/>),
/// leaving a few words that say where it is in the log; <see cref="FindAsync"/> rebuilds it from there.
/// </summary>
public sealed partial class SessionStore : IDisposable
{
    // Stream timestamp offsets resolve to chunks, written at second granularity: start replays
    // this much earlier than the record and skip what does not belong.
    private const long ReplayMarginSeconds = 5;

    private const long RebuildGiveUpMs = 60_000;

    private readonly BatchLog _log;
    private readonly ILogger<SessionStore> _logger;
    private readonly ConcurrentDictionary<string, SessionState> _sessions = new(StringComparer.Ordinal);
    // Sessions dropped from memory: what finds them in the log again. Guarded by _index, as every
    // move between here and _sessions and every record a log read applies, so none is lost in a move.
    private readonly Dictionary<string, EvictedSession> _evicted = new(StringComparer.Ordinal);
    private readonly Lock _index = new();
    private readonly JobFences _fences = new();
    private readonly RecordedSuperBatches _recordedSuperBatches;
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _catchingUp = new(1, 1);
    private long? _nextOffset;
    private readonly Lock _lookupGate = new();
    private Task? _nextLookup;
    private DateTime _lastLookup = DateTime.MinValue;

    /// <summary>At most one read of the log to its end per this interval for client lookups (<see cref="ReadToEndForLookupAsync"/>).</summary>
    internal static readonly TimeSpan LookupInterval = TimeSpan.FromSeconds(1);

    // A catch-up whose read the broker ends reads on, this many times, this far apart (about the
    // time a stream needs to elect a new leader), before it gives up (UNAVAILABLE to the caller).
    private const int MaxReadAttempts = 30;
    private static readonly TimeSpan ReadRetryDelay = TimeSpan.FromSeconds(1);

    public SessionStore(BatchLog log, ILogger<SessionStore> logger)
    {
        _log = log;
        _logger = logger;
        _recordedSuperBatches = new RecordedSuperBatches(log.MaxAge);
        SelectionTelemetry.Track(this, log.Name);
    }

    public bool IsLoaded => _loaded.Task.IsCompletedSuccessfully;

    /// <summary>Completes when the log has been read back (RPCs wait for it).</summary>
    public Task Loaded => _loaded.Task;

    /// <summary>Sessions held in memory now (the rest are evicted, or only in the log).</summary>
    public int LiveSessions => _sessions.Count;

    /// <summary>Reads the log from its start up to a marker written now, rebuilding sessions and the recorded super-batch set.</summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _log.DeclareAsync(cancellationToken);
            var read = await CatchUpAsync(null, cancellationToken);
            LogLoaded(_logger, _log.Name, read.Sessions, read.Batches);
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
    /// replica that served a job until it died, before this one serves the job's sessions. With
    /// <paramref name="takeover"/>, the marker says this replica holds that job from here on, and
    /// its offset, returned as the fence, is what this replica's batches of the job carry.
    /// </summary>
    public async Task<CatchUp> CatchUpAsync(string? takeover, CancellationToken cancellationToken)
    {
        await _catchingUp.WaitAsync(cancellationToken);
        try
        {
            var marker = Guid.NewGuid().ToString("N");
            await _log.AppendAsync(new SelectionLogRecord { Marker = marker, Job = takeover ?? "" }, $"marker/{marker}", cancellationToken);
            var sessions = 0;
            long batches = 0;
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    // Again after an interruption: from the first record not applied yet (applying is idempotent anyway).
                    await foreach (var (offset, record) in _log.ReadAsync(_nextOffset is { } next ? next : "first", cancellationToken))
                    {
                        if (offset >= 0)
                        {
                            _nextOffset = offset + 1;
                        }
                        if (record.KindCase == SelectionLogRecord.KindOneofCase.Marker && record.Marker == marker)
                        {
                            if (takeover is not null)
                            {
                                _fences.Add(takeover, offset, marker);
                            }
                            return new CatchUp(offset, sessions, batches);
                        }
                        switch (Apply(offset, record))
                        {
                            case SelectionLogRecord.KindOneofCase.Session:
                                sessions++;
                                break;
                            case SelectionLogRecord.KindOneofCase.Batch:
                                batches++;
                                break;
                            default:
                                break;
                        }
                    }
                    throw new InvalidOperationException($"the batch log {_log.Name} ended before marker {marker}.");
                }
                catch (Exception ex) when ((ex is BatchLogReadInterruptedException || ConfirmedPublisher.IsConnectionFailure(ex))
                    && attempt < MaxReadAttempts && !cancellationToken.IsCancellationRequested)
                {
                    LogReadInterrupted(_logger, _log.Name, ex.Message, attempt);
                    await Task.Delay(ReadRetryDelay, cancellationToken);
                }
            }
        }
        finally
        {
            _catchingUp.Release();
        }
    }

    /// <summary>
    /// Reads the log to its end for a lookup a client asked for (a resume naming no job, of a session
    /// this replica does not know): such reads share one marker and start at most once per
    /// <see cref="LookupInterval"/>, so clients, however many and whatever ids they name, add at most
    /// one marker to the log per interval. Each caller waits for a read that starts after it asked.
    /// </summary>
    public Task ReadToEndForLookupAsync(CancellationToken cancellationToken)
    {
        lock (_lookupGate)
        {
            if (_nextLookup is null)
            {
                var wait = TimeSpan.FromTicks(Math.Max(0, (_lastLookup + LookupInterval - DateTime.UtcNow).Ticks));
                _nextLookup = Task.Run(async () =>
                {
                    await Task.Delay(wait, CancellationToken.None);
                    lock (_lookupGate)
                    {
                        // Who asks from now on needs a read that starts later than this one.
                        _nextLookup = null;
                        _lastLookup = DateTime.UtcNow;
                    }
                    await CatchUpAsync(null, CancellationToken.None);
                }, CancellationToken.None);
            }
            return _nextLookup.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Applies one record read in log order; returns its kind when it changed something.</summary>
    private SelectionLogRecord.KindOneofCase Apply(long offset, SelectionLogRecord record)
    {
        lock (_index)
        {
            switch (record.KindCase)
            {
                case SelectionLogRecord.KindOneofCase.Marker when record.Job.Length > 0:
                    // Another replica (or this one, earlier) took the job over here.
                    _fences.Add(record.Job, offset, record.Marker);
                    return SelectionLogRecord.KindOneofCase.None;
                case SelectionLogRecord.KindOneofCase.Session:
                    var s = record.Session;
                    if (_sessions.ContainsKey(s.SessionId) || _evicted.ContainsKey(s.SessionId))
                    {
                        return SelectionLogRecord.KindOneofCase.None;
                    }
                    _sessions[s.SessionId] = SessionState.From(s);
                    return SelectionLogRecord.KindOneofCase.Session;
                case SelectionLogRecord.KindOneofCase.Batch:
                    var batch = record.Batch;
                    // A batch appended twice (a retried publish whose first confirm was lost), one this
                    // replica recorded itself, or one a replica wrote after it lost the job counts not.
                    var applied = !_fences.IsStale(record.Job, record.Fence, offset) && (
                        _sessions.TryGetValue(batch.SessionId, out var session) ? session.TryRecord(batch.Sequence, batch.RecordedUnixMs / 1000)
                        : _evicted.TryGetValue(batch.SessionId, out var evicted) && evicted.TryRecord(batch.Sequence));
                    if (!applied)
                    {
                        return SelectionLogRecord.KindOneofCase.None;
                    }
                    _recordedSuperBatches.Add(record.Job, batch.SuperBatchId, batch.RecordedUnixMs / 1000, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
                    return SelectionLogRecord.KindOneofCase.Batch;
                default:
                    return SelectionLogRecord.KindOneofCase.None;
            }
        }
    }

    /// <summary>The job of a session this replica knows (in memory or evicted); null for any other.</summary>
    public string? JobOf(string sessionId)
    {
        lock (_index)
        {
            return _sessions.TryGetValue(sessionId, out var live) ? live.Job
                : _evicted.TryGetValue(sessionId, out var evicted) ? evicted.Job : null;
        }
    }

    /// <summary>
    /// The session, from memory or rebuilt from the log when it was evicted; null when this replica
    /// knows no such session. Call it while holding the session's job: a rebuild trusts the fences
    /// this replica has read, which are all of the job's only while it holds the job.
    /// </summary>
    public async Task<SessionState?> FindAsync(string sessionId, CancellationToken cancellationToken)
    {
        EvictedSession? evicted;
        lock (_index)
        {
            if (_sessions.TryGetValue(sessionId, out var live))
            {
                return live;
            }
            if (!_evicted.TryGetValue(sessionId, out evicted))
            {
                return null;
            }
        }
        return await RebuildAsync(sessionId, evicted, cancellationToken);
    }

    /// <summary>
    /// Reads the evicted session's records from its start (its settings, then every batch up to
    /// the last one it had) and makes it live again. Appends nothing: the last batch is known.
    /// </summary>
    private async Task<SessionState> RebuildAsync(string sessionId, EvictedSession evicted, CancellationToken cancellationToken)
    {
        SessionState? state = null;
        var started = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await foreach (var (offset, record) in _log.ReadAsync(new AmqpTimestamp(Math.Max(0, evicted.CreatedUnixSeconds - ReplayMarginSeconds)), cancellationToken))
        {
            if (record.Session is { } s && s.SessionId == sessionId)
            {
                state ??= SessionState.From(s);
            }
            else if (state is not null && record.Batch is { } batch && batch.SessionId == sessionId && !_fences.IsStale(record.Job, record.Fence, offset))
            {
                state.TryRecord(batch.Sequence, batch.RecordedUnixMs / 1000);
            }
            else if (state is null && record.Batch is { } later && later.RecordedUnixMs > started + RebuildGiveUpMs)
            {
                // Well past the moment the rebuild began without the session's start: it has left
                // the log (retention). (The margin absorbs other replicas' clocks.)
                throw SelectionException.NotFound($"session {sessionId}'s records are no longer all in the batch log {_log.Name} (Selection:LogMaxAge); open a new session.");
            }
            if (state is null)
            {
                continue;
            }
            lock (_index)
            {
                if (_sessions.TryGetValue(sessionId, out var live))
                {
                    // Another resume rebuilt it first.
                    return live;
                }
                // Read on while a catch-up advanced the evicted entry meanwhile.
                if (state.LastSequence >= evicted.LastSequence)
                {
                    _evicted.Remove(sessionId);
                    state.Touch(started);
                    _sessions[sessionId] = state;
                    SelectionTelemetry.Rebuilt.Add(1);
                    return state;
                }
            }
        }
        throw new InvalidOperationException($"the batch log {_log.Name} ended while session {sessionId} was rebuilt.");
    }

    /// <summary>
    /// Drops from memory every session no stream has held since <paramref name="idle"/> before
    /// <paramref name="now"/> (a few words each stay, to find it in the log), and forgets evicted
    /// sessions the log no longer holds (Selection:LogMaxAge). Returns how many were evicted.
    /// </summary>
    public int EvictIdle(DateTimeOffset now, TimeSpan idle)
    {
        var before = (now - idle).ToUnixTimeMilliseconds();
        var expired = (now - _log.MaxAge).ToUnixTimeSeconds();
        var count = 0;
        lock (_index)
        {
            foreach (var (id, session) in _sessions)
            {
                if (session.TryEvict(before) && _sessions.TryRemove(id, out _))
                {
                    _evicted[id] = new EvictedSession(session.Job, session.CreatedUnixSeconds, session.LastSequence);
                    count++;
                }
            }
            foreach (var (id, evicted) in _evicted)
            {
                if (evicted.CreatedUnixSeconds < expired)
                {
                    _evicted.Remove(id);
                }
            }
        }
        SelectionTelemetry.Evicted.Add(count);
        return count;
    }

    /// <summary>The session when it is in memory now (neither evicted nor only in the log).</summary>
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
    /// Attaches a stream to <paramref name="session"/> (or to its rebuilt self, when it was evicted
    /// since it was found: the lease's <see cref="SessionLease.Session"/> is the one to use): a
    /// stream already attached (a trainer that restarted before its old stream was noticed dead) is
    /// cancelled and waited for. The lease's token is cancelled by <paramref name="cancellationToken"/>,
    /// <paramref name="stopping"/> or the next stream that attaches.
    /// </summary>
    public async Task<SessionLease> AttachAsync(SessionState session, CancellationToken cancellationToken, CancellationToken stopping)
    {
        ArgumentNullException.ThrowIfNull(session);
        while (!session.TryPin())
        {
            session = await FindAsync(session.Id, cancellationToken)
                ?? throw SelectionException.NotFound($"session {session.Id} expired from the batch log {_log.Name} (Selection:LogMaxAge).");
        }
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
            session.Unpin(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            cts.Dispose();
            throw;
        }
        return new SessionLease(session, cts);
    }

    /// <summary>
    /// Appends <paramref name="batch"/> (confirmed) with the fence of <paramref name="holder"/>, the
    /// job's feed, then has the feed confirm the job is still this replica's before the session
    /// advances: a batch whose record could land after another replica's takeover is never sent
    /// (the caller sends only after this returns). Call with the session's gate held.
    /// </summary>
    /// <exception cref="SelectionException">UNAVAILABLE when the feed could not confirm it still holds the job.</exception>
    public async Task RecordAsync(SessionState session, CuratedBatch batch, JobFeed holder, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(holder);
        batch.RecordedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        await _log.AppendAsync(new SelectionLogRecord { Job = session.Job, Batch = batch, Fence = holder.Fence }, $"batch/{session.Id}/{batch.Sequence}", cancellationToken);
        SelectionTelemetry.RecordLatency.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        // Not confirmed: the record may be fenced (after another replica's takeover) or not; either
        // way a later read of the log decides, and this replica's memory does not run ahead of it.
        await holder.ConfirmHeldAsync($"batch {batch.Sequence} of session {session.Id}", cancellationToken);
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
        await foreach (var (offset, record) in _log.ReadAsync(from, cancellationToken))
        {
            if (record.KindCase != SelectionLogRecord.KindOneofCase.Batch || record.Batch.SessionId != session.Id || record.Batch.Sequence != expected
                || _fences.IsStale(record.Job, record.Fence, offset))
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

    public void Dispose()
    {
        SelectionTelemetry.Untrack(this);
        _catchingUp.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Read of batch log {Stream} interrupted ({Reason}); reading on from the last record read (attempt {Attempt})")]
    private static partial void LogReadInterrupted(ILogger logger, string stream, string reason, int attempt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Batch log {Stream} read back: {Sessions} sessions, {Batches} batches")]
    private static partial void LogLoaded(ILogger logger, string stream, int sessions, long batches);
}

/// <summary>What a <see cref="SessionStore.CatchUpAsync"/> read: the offset of its marker (a takeover's fence) and the sessions and batches it added.</summary>
public readonly record struct CatchUp(long Fence, int Sessions, long Batches);

/// <summary>An evicted session: its job, when it started (where its records begin) and its last batch (where they end).</summary>
internal sealed class EvictedSession(string job, long createdUnixSeconds, long lastSequence)
{
    public string Job { get; } = job;

    public long CreatedUnixSeconds { get; } = createdUnixSeconds;

    public long LastSequence { get; private set; } = lastSequence;

    /// <summary>Advances by a batch another replica recorded, read from the log (the next one only).</summary>
    public bool TryRecord(long sequence)
    {
        if (sequence != LastSequence + 1)
        {
            return false;
        }
        LastSequence = sequence;
        return true;
    }
}
