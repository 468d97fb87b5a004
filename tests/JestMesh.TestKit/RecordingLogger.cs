using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace JestMesh.TestKit;

/// <summary>One log call: level, event (source-generated log methods name it after the method), text and structured values.</summary>
public sealed record LogEntry(LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> Values);

/// <summary>
/// A logger that records every call, so a test can wait for a component to say it reached a state
/// (with <see cref="Eventually"/>) instead of guessing from the outside when it got there.
/// </summary>
public sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    /// <summary>Entries of the log method named <paramref name="eventName"/>.</summary>
    public IReadOnlyList<LogEntry> Named(string eventName) => [.. _entries.Where(e => e.EventId.Name == eventName)];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.ToDictionary(p => p.Key, p => p.Value)
            : new Dictionary<string, object?>();
        _entries.Enqueue(new LogEntry(logLevel, eventId, formatter(state, exception), values));
    }
}
