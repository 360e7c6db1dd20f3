/// A composite HL7 data type backed by its decoded components, so unmodelled parts survive a
/// read-modify-write. Build one from a field repetition, from ER7 text, or from its properties.
public protocol HL7DataType: Sendable, Hashable {
    var components: HL7Components { get set }
    init(_ components: HL7Components)
}

extension HL7DataType {
    /// Parses ER7 text of one repetition.
    public init(er7: String, delimiters: HL7Delimiters = .standard) {
        self.init(HL7Components(er7: er7, delimiters: delimiters))
    }

    /// The value as escaped ER7 text, trailing empty components dropped.
    public func er7(delimiters: HL7Delimiters = .standard) -> String { components.er7(delimiters: delimiters) }
}

extension HL7Message {
    /// The data type at a path's segment, field and repetition (component parts of the path are
    /// ignored); nil when the field repetition is absent or empty.
    public func value<T: HL7DataType>(_ type: T.Type, _ path: HL7Path) -> T? {
        guard let position = segmentPosition(path.segmentID, occurrence: path.occurrence),
            let field = HL7Segment(message: self, position: position).field(path.field),
            let repetition = field.repetition(path.repetition), !repetition.isEmpty
        else { return nil }
        return T(repetition)
    }

    /// `value(_:_:)` with a path given as text.
    public func value<T: HL7DataType>(_ type: T.Type, at path: String) throws(HL7Error) -> T? {
        value(type, try HL7Path(path))
    }

    /// Every repetition of the field at a path, as a data type.
    public func values<T: HL7DataType>(_ type: T.Type, _ path: HL7Path) -> [T] {
        guard let position = segmentPosition(path.segmentID, occurrence: path.occurrence),
            let field = HL7Segment(message: self, position: position).field(path.field)
        else { return [] }
        return field.repetitions.filter { !$0.isEmpty }.map(T.init)
    }
}

/// HD, hierarchic designator: namespace ID ^ universal ID ^ universal ID type.
public struct HD: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(namespaceID: String = "", universalID: String = "", universalIDType: String = "") {
        components = HL7Components(components: [namespaceID, universalID, universalIDType])
    }
    public var namespaceID: String {
        get { components[1] }
        set { components[1] = newValue }
    }
    public var universalID: String {
        get { components[2] }
        set { components[2] = newValue }
    }
    public var universalIDType: String {
        get { components[3] }
        set { components[3] = newValue }
    }
}

/// XPN, extended person name. `familyName` is the surname (XPN-1.1); in v2.3 XPN-1 is plain text.
public struct XPN: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(
        familyName: String, givenName: String = "", middleName: String = "", suffix: String = "", prefix: String = "",
        degree: String = "", nameTypeCode: String = ""
    ) {
        components = HL7Components(components: [familyName, givenName, middleName, suffix, prefix, degree, nameTypeCode])
    }
    public var familyName: String {
        get { components[1, 1] }
        set { components[1, 1] = newValue }
    }
    public var givenName: String {
        get { components[2] }
        set { components[2] = newValue }
    }
    /// Second and further given names or initials.
    public var middleName: String {
        get { components[3] }
        set { components[3] = newValue }
    }
    public var suffix: String {
        get { components[4] }
        set { components[4] = newValue }
    }
    public var prefix: String {
        get { components[5] }
        set { components[5] = newValue }
    }
    public var degree: String {
        get { components[6] }
        set { components[6] = newValue }
    }
    /// Table 0200 (L legal, D display, …).
    public var nameTypeCode: String {
        get { components[7] }
        set { components[7] = newValue }
    }
}

/// CX, extended composite ID with check digit.
public struct CX: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(id: String, assigningAuthority: HD = HD(), identifierTypeCode: String = "") {
        components = HL7Components(components: [id])
        self.assigningAuthority = assigningAuthority
        self.identifierTypeCode = identifierTypeCode
    }
    public var id: String {
        get { components[1] }
        set { components[1] = newValue }
    }
    public var checkDigit: String {
        get { components[2] }
        set { components[2] = newValue }
    }
    /// Table 0061 (M10, M11, ISO, …).
    public var checkDigitScheme: String {
        get { components[3] }
        set { components[3] = newValue }
    }
    public var assigningAuthority: HD {
        get { HD(components.nested(4)) }
        set { components.setNested(4, newValue.components) }
    }
    /// Table 0203 (MR, PI, NI, …).
    public var identifierTypeCode: String {
        get { components[5] }
        set { components[5] = newValue }
    }
    public var assigningFacility: HD {
        get { HD(components.nested(6)) }
        set { components.setNested(6, newValue.components) }
    }
}

/// XAD, extended address. `street` is XAD-1.1 (street or mailing address).
public struct XAD: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(
        street: String = "", otherDesignation: String = "", city: String = "", stateOrProvince: String = "", zip: String = "",
        country: String = "", addressType: String = ""
    ) {
        components = HL7Components(components: [street, otherDesignation, city, stateOrProvince, zip, country, addressType])
    }
    public var street: String {
        get { components[1, 1] }
        set { components[1, 1] = newValue }
    }
    public var otherDesignation: String {
        get { components[2] }
        set { components[2] = newValue }
    }
    public var city: String {
        get { components[3] }
        set { components[3] = newValue }
    }
    public var stateOrProvince: String {
        get { components[4] }
        set { components[4] = newValue }
    }
    public var zip: String {
        get { components[5] }
        set { components[5] = newValue }
    }
    public var country: String {
        get { components[6] }
        set { components[6] = newValue }
    }
    /// Table 0190 (H home, B business, …).
    public var addressType: String {
        get { components[7] }
        set { components[7] = newValue }
    }
    public var otherGeographicDesignation: String {
        get { components[8] }
        set { components[8] = newValue }
    }
    public var countyCode: String {
        get { components[9] }
        set { components[9] = newValue }
    }
}

/// CE / CWE, coded element (with exceptions): the first six components, shared by both types.
public struct CWE: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(
        identifier: String, text: String = "", codingSystem: String = "", alternateIdentifier: String = "",
        alternateText: String = "", alternateCodingSystem: String = ""
    ) {
        components = HL7Components(components: [identifier, text, codingSystem, alternateIdentifier, alternateText, alternateCodingSystem])
    }
    public var identifier: String {
        get { components[1] }
        set { components[1] = newValue }
    }
    public var text: String {
        get { components[2] }
        set { components[2] = newValue }
    }
    public var codingSystem: String {
        get { components[3] }
        set { components[3] = newValue }
    }
    public var alternateIdentifier: String {
        get { components[4] }
        set { components[4] = newValue }
    }
    public var alternateText: String {
        get { components[5] }
        set { components[5] = newValue }
    }
    public var alternateCodingSystem: String {
        get { components[6] }
        set { components[6] = newValue }
    }
}

/// CE is CWE's first six components.
public typealias CE = CWE

/// XTN, extended telecommunication number. Component 1 is the v2.3 free-form number.
public struct XTN: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(
        telephoneNumber: String = "", useCode: String = "", equipmentType: String = "", email: String = "", countryCode: String = "",
        areaCode: String = "", localNumber: String = "", extension: String = ""
    ) {
        components = HL7Components(components: [
            telephoneNumber, useCode, equipmentType, email, countryCode, areaCode, localNumber, `extension`,
        ])
    }
    /// The v2.3 free-form number (`(555)555-0123`); deprecated from v2.5 but still sent.
    public var telephoneNumber: String {
        get { components[1] }
        set { components[1] = newValue }
    }
    /// Table 0201 (PRN, WPN, NET, …).
    public var useCode: String {
        get { components[2] }
        set { components[2] = newValue }
    }
    /// Table 0202 (PH, CP, Internet, …).
    public var equipmentType: String {
        get { components[3] }
        set { components[3] = newValue }
    }
    public var email: String {
        get { components[4] }
        set { components[4] = newValue }
    }
    public var countryCode: String {
        get { components[5] }
        set { components[5] = newValue }
    }
    public var areaCode: String {
        get { components[6] }
        set { components[6] = newValue }
    }
    public var localNumber: String {
        get { components[7] }
        set { components[7] = newValue }
    }
    public var `extension`: String {
        get { components[8] }
        set { components[8] = newValue }
    }
}

/// MSG, message type (MSH-9): message code ^ trigger event ^ message structure.
public struct MSG: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(messageCode: String, triggerEvent: String = "", messageStructure: String = "") {
        components = HL7Components(components: [messageCode, triggerEvent, messageStructure])
    }
    public var messageCode: String {
        get { components[1] }
        set { components[1] = newValue }
    }
    public var triggerEvent: String {
        get { components[2] }
        set { components[2] = newValue }
    }
    public var messageStructure: String {
        get { components[3] }
        set { components[3] = newValue }
    }
}

/// TS, time stamp: a DTM in component 1 (and the deprecated degree of precision in 2).
public struct TS: HL7DataType {
    public var components: HL7Components
    public init(_ components: HL7Components) { self.components = components }
    public init(_ time: HL7DateTime) { components = HL7Components(components: [time.er7]) }
    /// The parsed time, or nil when component 1 is not a valid DTM.
    public var time: HL7DateTime? {
        get { HL7DateTime(components[1]) }
        set { components[1] = newValue?.er7 ?? "" }
    }
}
