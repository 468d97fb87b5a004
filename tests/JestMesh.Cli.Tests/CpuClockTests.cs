using System.Diagnostics;
using JestMesh.Cli.Commands;

namespace JestMesh.Cli.Tests;

/// <summary>The load bench's CPU accounting from /proc (Linux only, as the bench).</summary>
[Trait("Tier", "Unit")]
public sealed class CpuClockTests
{
    [Fact]
    public void A_process_s_cpu_time_grows_with_the_work_it_does()
    {
        var before = CpuClock.ProcessMs(Environment.ProcessId);
        Assert.NotNull(before);
        // Spin a core for 200 ms: at least a few 10 ms ticks must show.
        var clock = Stopwatch.StartNew();
        var x = 0.0;
        while (clock.ElapsedMilliseconds < 200)
        {
            x += Math.Sqrt(x + 1);
        }
        Assert.True(x > 0);
        var after = CpuClock.ProcessMs(Environment.ProcessId);
        Assert.InRange(after!.Value - before.Value, 50, 10_000);
    }

    [Fact]
    public void Threads_are_listed_with_their_names_and_cpu_time()
    {
        var threads = CpuClock.ThreadsMs(Environment.ProcessId);
        Assert.Contains(threads, t => t.Tid == Environment.ProcessId);
        Assert.All(threads, t => Assert.True(t.Ms >= 0 && t.Name.Length is > 0 and <= 15));
        Assert.True(threads.Sum(t => t.Ms) <= CpuClock.ProcessMs(Environment.ProcessId) + 10);
    }

    [Fact]
    public void A_process_that_is_gone_has_no_figures()
    {
        Assert.Null(CpuClock.ProcessMs(int.MaxValue));
        Assert.Empty(CpuClock.ThreadsMs(int.MaxValue));
    }

    [Fact]
    public void The_machine_is_busy_for_part_of_its_total_time()
    {
        var machine = CpuClock.MachineMs();
        Assert.NotNull(machine);
        Assert.InRange(machine.Value.BusyMs, 0, machine.Value.TotalMs);
    }

    [Fact]
    public void Broker_pids_come_from_the_broker_directory_s_pid_files_of_running_processes()
    {
        var dir = Directory.CreateTempSubdirectory("cpuclock-");
        try
        {
            Assert.Empty(CpuClock.BrokerPids(dir.FullName));
            // A single broker: DIR/rabbit.pid; a cluster: DIR/node-PORT/rabbit.pid. This process stands in for a live VM.
            File.WriteAllText(Path.Combine(dir.FullName, "rabbit.pid"), $"{Environment.ProcessId}\n");
            Directory.CreateDirectory(Path.Combine(dir.FullName, "node-6301"));
            File.WriteAllText(Path.Combine(dir.FullName, "node-6301", "rabbit.pid"), $"{int.MaxValue}");
            Assert.Equal([Environment.ProcessId], CpuClock.BrokerPids(dir.FullName));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
