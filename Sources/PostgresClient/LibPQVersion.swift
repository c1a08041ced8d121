import CLibPQ

public enum LibPQ {
    /// The version of the libpq the process loaded (`PQlibVersion`): `17.2`, or `9.6.24` before 10.
    public static var version: String {
        let number = Int(PQlibVersion())
        return number >= 100_000 ? "\(number / 10_000).\(number % 10_000)"
            : "\(number / 10_000).\((number / 100) % 100).\(number % 100)"
    }
}
