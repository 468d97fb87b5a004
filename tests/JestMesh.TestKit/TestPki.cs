using System.Diagnostics;
using JestMesh.Tls;

namespace JestMesh.TestKit;

/// <summary>
/// A throwaway PKI made with the openssl command line at test time, in a temp directory: a CA, a
/// server certificate for localhost and 127.0.0.1 (serverAuth), a client certificate (clientAuth), and
/// a second, unrelated CA with a client certificate of its own. P-256 keys, valid for two days.
/// Files: ca.crt, server.crt/.key, client.crt/.key, other-ca.crt, other-client.crt/.key.
/// </summary>
public sealed class TestPki : IDisposable
{
    private TestPki(string directory) => Directory = directory;

    public string Directory { get; }

    public string CaFile => File("ca.crt");

    public string ServerCertificate => File("server.crt");

    public string ServerKey => File("server.key");

    public string ClientCertificate => File("client.crt");

    public string ClientKey => File("client.key");

    public string OtherCaFile => File("other-ca.crt");

    public string OtherClientCertificate => File("other-client.crt");

    public string OtherClientKey => File("other-client.key");

    /// <summary>A client's settings: trusts the CA, presents the client certificate.</summary>
    public TlsOptions Client() => new() { CaFile = CaFile, CertificateFile = ClientCertificate, KeyFile = ClientKey };

    /// <summary>A server's settings: serves server.crt, asks for client certificates from the CA.</summary>
    public TlsOptions Server() => new() { CaFile = CaFile, CertificateFile = ServerCertificate, KeyFile = ServerKey };

    public string File(string name) => Path.Combine(Directory, name);

    public static async Task<TestPki> CreateAsync()
    {
        var pki = new TestPki(System.IO.Directory.CreateTempSubdirectory("jestmesh-pki-").FullName);
        try
        {
            await pki.CaAsync("ca", "JestMesh Test CA");
            await pki.IssueAsync("server", "ca", "localhost", "serverAuth", "subjectAltName=DNS:localhost,IP:127.0.0.1");
            await pki.IssueAsync("client", "ca", "jestmesh-trainer", "clientAuth");
            await pki.CaAsync("other-ca", "Some Other CA");
            await pki.IssueAsync("other-client", "other-ca", "jestmesh-trainer", "clientAuth");
        }
        catch
        {
            pki.Dispose();
            throw;
        }
        return pki;
    }

    private static readonly string[] Key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

    private Task CaAsync(string name, string commonName) =>
        OpenSslAsync(["req", "-x509", .. Key, "-days", "2", "-subj", $"/CN={commonName}", "-keyout", File($"{name}.key"), "-out", File($"{name}.crt")]);

    private async Task IssueAsync(string name, string ca, string commonName, string usage, string? extra = null)
    {
        await System.IO.File.WriteAllTextAsync(File($"{name}.ext"),
            $"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n{extra}\n");
        await OpenSslAsync(["req", .. Key, "-subj", $"/CN={commonName}", "-keyout", File($"{name}.key"), "-out", File($"{name}.csr")]);
        await OpenSslAsync(["x509", "-req", "-in", File($"{name}.csr"), "-CA", File($"{ca}.crt"), "-CAkey", File($"{ca}.key"),
            "-CAcreateserial", "-days", "2", "-extfile", File($"{name}.ext"), "-out", File($"{name}.crt")]);
    }

    private static async Task OpenSslAsync(string[] arguments)
    {
        var start = new ProcessStartInfo("openssl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not run openssl");
        var stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(deadline.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"openssl {string.Join(' ', arguments)} failed ({process.ExitCode}): {await stderr}");
        }
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }
}
