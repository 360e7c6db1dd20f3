import Testing

@testable import HL7v2

@Suite("HL7v2 terser paths and data types")
struct HL7v2TerserTests {
    @Test("path grammar")
    func grammar() throws {
        #expect(try HL7Path("PID-3(2).1") == HL7Path(segmentID: "PID", field: 3, repetition: 2, component: 1))
        #expect(try HL7Path("OBX(3)-5") == HL7Path(segmentID: "OBX", occurrence: 3, field: 5))
        #expect(try HL7Path("MSH-9.2") == HL7Path(segmentID: "MSH", field: 9, component: 2))
        #expect(try HL7Path("PID-5.1.1") == HL7Path(segmentID: "PID", field: 5, component: 1, subcomponent: 1))
        #expect(try HL7Path("ZPI-2").segmentID == "ZPI")
        #expect(try HL7Path("IN1-3").segmentID == "IN1")
        #expect(try HL7Path("OBX(3)-5(2).4.1").description == "OBX(3)-5(2).4.1")
        for bad in [
            "", "PID", "PID-", "PID-0", "pid-3", "PID-3.", "PID-3..1", "PID(0)-3", "PID-3(x)", "PID-3.1.1.1", "P1D-3 ", "1ID-3",
            "PID-3(2", "PID-1234567", "PID_3", "PIDX-1", "PID-3-1",
        ] {
            #expect(throws: HL7Error.self, "\(bad)") { try HL7Path(bad) }
        }
        do {
            _ = try HL7Path("PID-3(x)")
        } catch {
            #expect(error.code == .malformedPath)
            #expect(error.location.byteOffset == 6)
        }
        let message = try HL7Message.parse(sampleADT)
        #expect(throws: HL7Error.self) { try message.value(at: "PID-x") }
        #expect(message["PID-x"] == nil)
    }

    @Test("XPN, CX and HD")
    func names() throws {
        let message = try HL7Message.parse(sampleADT)
        let name = try #require(message.value(XPN.self, try HL7Path("PID-5")))
        #expect(name.familyName == "张三")
        #expect(name.nameTypeCode == "L")
        #expect(name.er7() == "张三^^^^^^L")
        let ids = message.values(CX.self, try HL7Path("PID-3"))
        #expect(ids.count == 2)
        #expect(ids[0].id == "12345")
        #expect(ids[0].assigningAuthority == HD(namespaceID: "HOSP", universalID: "1.2.3", universalIDType: "ISO"))
        #expect(ids[0].identifierTypeCode == "MR")
        #expect(ids[1].checkDigit == "5")
        #expect(ids[1].checkDigitScheme == "M10")
        #expect(ids[0].er7() == "12345^^^HOSP&1.2.3&ISO^MR")
        var built = CX(id: "A|1", assigningAuthority: HD(namespaceID: "GZ", universalID: "2.16.156"), identifierTypeCode: "NI")
        built.assigningFacility = HD(namespaceID: "F1")
        #expect(built.er7() == "A\\F\\1^^^GZ&2.16.156^NI^F1")
        #expect(CX(er7: built.er7()).er7() == built.er7())
        #expect(CX(er7: built.er7()).assigningAuthority.universalID == "2.16.156")
        let person = XPN(familyName: "李", givenName: "四", middleName: "M", suffix: "Jr", prefix: "Dr", degree: "MD", nameTypeCode: "L")
        #expect(person.er7() == "李^四^M^Jr^Dr^MD^L")
        #expect(XPN(er7: "Smith&van^John").familyName == "Smith")
        #expect(XPN(er7: "Smith&van^John").er7() == "Smith&van^John")
    }

    @Test("XAD, XTN, CWE and MSG")
    func others() throws {
        let message = try HL7Message.parse(sampleADT)
        let address = try #require(message.value(XAD.self, try HL7Path("PID-11")))
        #expect(address.street == "贵阳市")
        #expect(address.city == "贵阳")
        #expect(address.stateOrProvince == "GZ")
        #expect(address.zip == "550000")
        #expect(address.country == "CHN")
        #expect(address.addressType == "H")
        let full = XAD(er7: "1 Main^Apt 2^City^ST^12345^USA^H^Other^County")
        #expect(full.otherGeographicDesignation == "Other")
        #expect(full.countyCode == "County")
        #expect(full.otherDesignation == "Apt 2")
        let phone = try #require(message.value(XTN.self, try HL7Path("PID-13")))
        #expect(phone.useCode == "PRN")
        #expect(phone.equipmentType == "PH")
        #expect(phone.countryCode == "86")
        #expect(phone.areaCode == "851")
        #expect(phone.localNumber == "1234567")
        let v23 = XTN(er7: "(555)555-0123^HOME^^a@b.cn^^^^99")
        #expect(v23.telephoneNumber == "(555)555-0123")
        #expect(v23.email == "a@b.cn")
        #expect(v23.extension == "99")
        let code = CWE(er7: "I10^Hypertension^I10C^401.9^HTN^I9C")
        #expect(code.identifier == "I10")
        #expect(code.text == "Hypertension")
        #expect(code.codingSystem == "I10C")
        #expect(code.alternateIdentifier == "401.9")
        #expect(code.alternateText == "HTN")
        #expect(code.alternateCodingSystem == "I9C")
        #expect(CWE(identifier: "X", text: "a^b").er7() == "X^a\\S\\b")
        let type = try #require(message.value(MSG.self, try HL7Path("MSH-9")))
        #expect(type == MSG(messageCode: "ADT", triggerEvent: "A01", messageStructure: "ADT_A01"))
        #expect(type.er7() == "ADT^A01^ADT_A01")
    }

    @Test("TS/DTM precision, validation and epoch seconds")
    func timestamps() throws {
        let full = try #require(HL7DateTime("20240131083005.1234+0800"))
        #expect(full.precision == .fraction)
        #expect(full.year == 2024 && full.month == 1 && full.day == 31 && full.hour == 8 && full.minute == 30 && full.second == 5)
        #expect(full.fractionDigits == "1234")
        #expect(full.offsetMinutes == 480)
        #expect(full.epochSeconds() == 1_706_661_005.1234)
        #expect(full.er7 == "20240131083005.1234+0800")
        #expect(HL7DateTime("2024")?.precision == .year)
        #expect(HL7DateTime("202402")?.precision == .month)
        #expect(HL7DateTime("20240229")?.precision == .day)
        #expect(HL7DateTime("2024022913")?.precision == .hour)
        #expect(HL7DateTime("202402291305")?.precision == .minute)
        #expect(HL7DateTime("20240229130559")?.precision == .second)
        #expect(HL7DateTime("20010101000000+0700")?.offsetMinutes == 420)
        #expect(HL7DateTime("19951010134000-0500")?.epochSeconds() == 813_350_400)
        #expect(HL7DateTime("19700101")?.epochSeconds() == nil)
        #expect(HL7DateTime("19700101")?.epochSeconds(defaultOffsetMinutes: 480) == -28_800)
        #expect(HL7DateTime("19700101")?.epochSeconds(defaultOffsetMinutes: 0) == 0)
        for bad in [
            "", "202", "20230229", "20241301", "20240132", "2024013124", "202401312360", "20240131235960", "2024.1",
            "20240131083005.12345", "20240131+2500", "20240131+08", "2012010219dd2527.532-0500", "2024013108300x", "20240131 ",
        ] {
            #expect(HL7DateTime(bad) == nil, "\(bad)")
        }
        let now = HL7DateTime(epochSeconds: 1_706_661_005, offsetMinutes: 480)
        #expect(now.er7 == "20240131083005+0800")
        #expect(HL7DateTime(epochSeconds: -1, offsetMinutes: 0).er7 == "19691231235959+0000")
        let stamp = TS(er7: "20240131083005+0800^S")
        #expect(stamp.time == full.withoutFraction)
        #expect(TS(now).er7() == "20240131083005+0800")
    }
}

extension HL7DateTime {
    var withoutFraction: HL7DateTime {
        var copy = self
        copy.fractionDigits = nil
        return copy
    }
}
