using System.Diagnostics;

namespace JestMesh.TestKit;

/// <summary>Waiting on a condition with a deadline, never a fixed sleep.</summary>
public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until it holds; throws a TimeoutException naming <paramref name="what"/> at the deadline.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan deadline, string what)
    {
        ArgumentNullException.ThrowIfNull(condition);
        await WaitUntilAsync(() => Task.FromResult(condition()), deadline, what);
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan deadline, string what)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > deadline)
            {
                throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.#} s waiting for: {what}");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(25));
        }
    }

    /// <summary>Awaits <paramref name="task"/>, failing with <paramref name="what"/> when the deadline passes first.</summary>
    public static async Task<T> Within<T>(this Task<T> task, TimeSpan deadline, string what)
    {
        ArgumentNullException.ThrowIfNull(task);
        try
        {
            return await task.WaitAsync(deadline);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.#} s waiting for: {what}");
        }
    }

    /// <summary>Awaits <paramref name="task"/>, failing with <paramref name="what"/> when the deadline passes first.</summary>
    public static async Task Within(this Task task, TimeSpan deadline, string what)
    {
        ArgumentNullException.ThrowIfNull(task);
        try
        {
            await task.WaitAsync(deadline);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.#} s waiting for: {what}");
        }
    }
}
